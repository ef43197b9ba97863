-- +goose Up
-- Pools (flash sales, issue 13): units of a SKU carved out of available for one sale when
-- it is created, so ordinary orders can never take them and the sale can never take
-- ordinary units. remaining counts in stock_levels.reserved while the pool is open; orders
-- reserve from it (their reservation rows carry pool_id), a released order line goes back
-- to it while it is open, and closing it (end, cancel, or the sweeper past expires_at)
-- returns what remains to available. `mall stock check`: reserved = held lines + the open
-- pools' remaining.
CREATE TABLE stock_pools (
	pool_id     BIGINT      NOT NULL,
	sku_id      BIGINT      NOT NULL,
	merchant_id BIGINT      NOT NULL,
	quantity    BIGINT      NOT NULL,
	remaining   BIGINT      NOT NULL,
	status      TINYINT     NOT NULL DEFAULT 0, -- 0 open, 1 closed
	expires_at  DATETIME(6) NOT NULL,
	created_at  DATETIME(6) NOT NULL,
	updated_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (pool_id),
	KEY ix_stock_pools_expiry (status, expires_at),
	KEY ix_stock_pools_sku (sku_id, status),
	CONSTRAINT ck_stock_pools_units CHECK (quantity > 0 AND remaining >= 0 AND remaining <= quantity)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE stock_reservations ADD COLUMN pool_id BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE stock_reservations DROP COLUMN pool_id;
DROP TABLE stock_pools;
