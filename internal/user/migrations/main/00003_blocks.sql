-- +goose Up
-- Blocks (the blacklist): a user, one IP address or a CIDR refused everywhere (403
-- access.blocked) until expires_at (NULL: until lifted). value is canonical: the decimal user
-- ID, netip's form of the address, or the masked prefix. Every replica keeps the live rows in
-- memory and reloads them on a Redis message when one changes (blocks.go).
CREATE TABLE user_blocks (
	id         BIGINT       NOT NULL,
	kind       VARCHAR(8)   NOT NULL,
	value      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	reason     VARCHAR(255) NOT NULL DEFAULT '',
	created_by BIGINT       NOT NULL,
	created_at DATETIME(6)  NOT NULL,
	expires_at DATETIME(6)  NULL,
	PRIMARY KEY (id),
	KEY ix_user_blocks_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE user_blocks;
