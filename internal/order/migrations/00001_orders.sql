-- +goose Up
-- Buyer-owned order data, on every physical shard (rows live on the buyer's shard; every
-- ID carries the buyer's logical shard). Orders and their items are RANGE-partitioned by
-- month on created_at: one partition per month plus a MAXVALUE catch-all (pmax) so an
-- insert never fails when maintenance lags; `mall db partitions` (and the module, at
-- startup and daily) split pmax with REORGANIZE PARTITION to add the coming months.

CREATE TABLE order_cart_items (
	buyer_id   BIGINT      NOT NULL,
	sku_id     BIGINT      NOT NULL,
	quantity   INT         NOT NULL,
	created_at DATETIME(6) NOT NULL,
	updated_at DATETIME(6) NOT NULL,
	PRIMARY KEY (buyer_id, sku_id),
	CONSTRAINT ck_order_cart_items_quantity CHECK (quantity > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One checkout groups the orders (one per merchant) a buyer placed at once; one payment
-- pays it.
CREATE TABLE order_checkouts (
	id           BIGINT      NOT NULL,
	buyer_id     BIGINT      NOT NULL,
	total_amount BIGINT      NOT NULL,
	currency     CHAR(3)     NOT NULL,
	expires_at   DATETIME(6) NOT NULL,
	created_at   DATETIME(6) NOT NULL,
	PRIMARY KEY (id),
	KEY ix_order_checkouts_buyer (buyer_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE order_orders (
	id            BIGINT       NOT NULL,
	created_at    DATETIME(6)  NOT NULL,
	checkout_id   BIGINT       NOT NULL,
	buyer_id      BIGINT       NOT NULL,
	merchant_id   BIGINT       NOT NULL,
	status        VARCHAR(20)  NOT NULL,
	prev_status   VARCHAR(20)  NOT NULL DEFAULT '',
	total_amount  BIGINT       NOT NULL,
	currency      CHAR(3)      NOT NULL,
	address       TEXT         NOT NULL,
	carrier       VARCHAR(64)  NOT NULL DEFAULT '',
	tracking_no   VARCHAR(64)  NOT NULL DEFAULT '',
	refund_reason VARCHAR(500) NOT NULL DEFAULT '',
	refund_id     BIGINT       NOT NULL DEFAULT 0,
	stock_lost    TINYINT      NOT NULL DEFAULT 0,
	expires_at    DATETIME(6)  NOT NULL,
	paid_at       DATETIME(6)  NULL,
	updated_at    DATETIME(6)  NOT NULL,
	PRIMARY KEY (id, created_at),
	KEY ix_order_orders_buyer (buyer_id, created_at, id),
	KEY ix_order_orders_merchant (merchant_id, created_at, id),
	KEY ix_order_orders_checkout (checkout_id),
	KEY ix_order_orders_expiry (status, expires_at),
	CONSTRAINT ck_order_orders_status CHECK (status IN ('pending_payment','paid','shipped','completed','cancelled','refund_requested','refunded'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
PARTITION BY RANGE COLUMNS (created_at) (
	PARTITION p202610 VALUES LESS THAN ('2026-11-01'),
	PARTITION p202611 VALUES LESS THAN ('2026-12-01'),
	PARTITION p202612 VALUES LESS THAN ('2027-01-01'),
	PARTITION p202701 VALUES LESS THAN ('2027-02-01'),
	PARTITION pmax VALUES LESS THAN (MAXVALUE)
);

CREATE TABLE order_items (
	order_id    BIGINT       NOT NULL,
	sku_id      BIGINT       NOT NULL,
	created_at  DATETIME(6)  NOT NULL,
	product_id  BIGINT       NOT NULL,
	merchant_id BIGINT       NOT NULL,
	title       VARCHAR(200) NOT NULL,
	attrs       TEXT         NOT NULL,
	price       BIGINT       NOT NULL,
	quantity    INT          NOT NULL,
	PRIMARY KEY (order_id, sku_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
PARTITION BY RANGE COLUMNS (created_at) (
	PARTITION p202610 VALUES LESS THAN ('2026-11-01'),
	PARTITION p202611 VALUES LESS THAN ('2026-12-01'),
	PARTITION p202612 VALUES LESS THAN ('2027-01-01'),
	PARTITION p202701 VALUES LESS THAN ('2027-02-01'),
	PARTITION pmax VALUES LESS THAN (MAXVALUE)
);

-- A payment pays one checkout; its ID is the gateway's out_trade_no.
CREATE TABLE order_payments (
	id          BIGINT       NOT NULL,
	checkout_id BIGINT       NOT NULL,
	buyer_id    BIGINT       NOT NULL,
	provider    VARCHAR(32)  NOT NULL,
	amount      BIGINT       NOT NULL,
	currency    CHAR(3)      NOT NULL,
	status      VARCHAR(20)  NOT NULL,
	pay_url     VARCHAR(2048) NOT NULL DEFAULT '',
	trade_no    VARCHAR(128) NOT NULL DEFAULT '',
	notify_id   VARCHAR(128) NOT NULL DEFAULT '',
	refunded    BIGINT       NOT NULL DEFAULT 0,
	paid_at     DATETIME(6)  NULL,
	created_at  DATETIME(6)  NOT NULL,
	updated_at  DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_order_payments_checkout (checkout_id, status),
	CONSTRAINT ck_order_payments_status CHECK (status IN ('pending','succeeded','failed','refunded'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE order_payments;
DROP TABLE order_items;
DROP TABLE order_orders;
DROP TABLE order_checkouts;
DROP TABLE order_cart_items;
