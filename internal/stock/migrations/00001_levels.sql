-- +goose Up
-- Stock levels per SKU on db.main. The counters are never negative (the CHECK is a backstop:
-- every UPDATE guards its own arithmetic in its WHERE clause), and with reservations
-- on_hand = available + reserved + sold. merchant_id is the SKU's owner, set once by Init;
-- every merchant-facing statement filters by it so another merchant's SKU is not found.
CREATE TABLE stock_levels (
	sku_id      BIGINT      NOT NULL,
	merchant_id BIGINT      NOT NULL,
	available   BIGINT      NOT NULL DEFAULT 0,
	reserved    BIGINT      NOT NULL DEFAULT 0,
	sold        BIGINT      NOT NULL DEFAULT 0,
	-- version counts changes; events carry it so consumers can drop stale ones.
	version     BIGINT      NOT NULL DEFAULT 0,
	updated_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (sku_id),
	KEY ix_stock_levels_merchant (merchant_id, sku_id),
	CONSTRAINT ck_stock_levels_counters CHECK (available >= 0 AND reserved >= 0 AND sold >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE stock_levels;
