-- +goose Up
-- Live rooms on db.main. The stream key is never stored: key_hash is its SHA-256 (the key
-- is 160 random bits, so a fast hash is enough; ADR 0019), unique so on_publish finds the
-- room by it. publisher identifies the nginx-rtmp session that made the room live (client ID
-- and address), so a done/update notification of another session changes nothing.
CREATE TABLE live_rooms (
	id                BIGINT       NOT NULL,
	merchant_id       BIGINT       NOT NULL,
	title             VARCHAR(400) NOT NULL,
	status            VARCHAR(16)  NOT NULL,
	key_hash          BINARY(32)   NOT NULL,
	publisher         VARCHAR(128) NOT NULL DEFAULT '',
	pinned_product_id BIGINT       NOT NULL DEFAULT 0,
	scheduled_at      DATETIME(6)  NULL,
	started_at        DATETIME(6)  NULL,
	ended_at          DATETIME(6)  NULL,
	version           BIGINT       NOT NULL DEFAULT 1,
	created_at        DATETIME(6)  NOT NULL,
	updated_at        DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY ux_live_rooms_key (key_hash),
	KEY ix_live_rooms_merchant (merchant_id, id),
	KEY ix_live_rooms_status (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE live_rooms;
