-- +goose Up
-- on_hand is the physical stock: only Init and Set change it; reservations move units between
-- available, reserved and sold, so on_hand = available + reserved + sold always holds and
-- `mall stock check` can verify it.
ALTER TABLE stock_levels ADD COLUMN on_hand BIGINT NOT NULL DEFAULT 0 AFTER merchant_id;
UPDATE stock_levels SET on_hand = available + reserved + sold;

-- One row per (order, SKU): the units an order holds (status 0), bought (1) or gave back
-- (2, released: cancelled or expired). returned counts units of a bought line given back by
-- a refund. Reserved = SUM(quantity) of held rows and sold = SUM(quantity - returned) of
-- bought rows, per SKU (checked by `mall stock check`).
CREATE TABLE stock_reservations (
	order_id   BIGINT      NOT NULL,
	sku_id     BIGINT      NOT NULL,
	buyer_id   BIGINT      NOT NULL,
	quantity   BIGINT      NOT NULL,
	returned   BIGINT      NOT NULL DEFAULT 0,
	status     TINYINT     NOT NULL DEFAULT 0,
	expires_at DATETIME(6) NOT NULL,
	created_at DATETIME(6) NOT NULL,
	updated_at DATETIME(6) NOT NULL,
	PRIMARY KEY (order_id, sku_id),
	KEY ix_stock_reservations_expiry (status, expires_at),
	KEY ix_stock_reservations_buyer (buyer_id, sku_id, status),
	KEY ix_stock_reservations_sku (sku_id, status),
	CONSTRAINT ck_stock_reservations_quantity CHECK (quantity > 0 AND returned >= 0 AND returned <= quantity)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE stock_reservations;
ALTER TABLE stock_levels DROP COLUMN on_hand;
