-- +goose Up
-- Buyers' addresses live on the buyer's shard (user_id mod 1024 -> physical shard); their IDs
-- carry the same logical shard. phone_enc is AES-256-GCM: 1 byte format version, 4 bytes key
-- id, 12 bytes nonce, ciphertext and tag; the address ID is the additional data.
CREATE TABLE user_addresses (
	id         BIGINT        NOT NULL,
	user_id    BIGINT        NOT NULL,
	name       VARCHAR(64)   NOT NULL,
	phone_enc  VARBINARY(128) NOT NULL,
	province   VARCHAR(64)   NOT NULL,
	city       VARCHAR(64)   NOT NULL,
	district   VARCHAR(64)   NOT NULL,
	detail     VARCHAR(255)  NOT NULL,
	created_at DATETIME(6)   NOT NULL,
	updated_at DATETIME(6)   NOT NULL,
	PRIMARY KEY (id),
	KEY ix_user_addresses_user (user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE user_addresses;
