-- +goose Up
-- Flash sales (API.md "Flash sales", ADR 0030). A sale's units live in the stock module's
-- pool of the same ID (carved out of the SKU at creation); Redis holds only the gate, a
-- pre-filter rebuilt from these rows and the pool when lost.
CREATE TABLE flashsale_sales (
	id             BIGINT       NOT NULL,
	merchant_id    BIGINT       NOT NULL,
	product_id     BIGINT       NOT NULL,
	sku_id         BIGINT       NOT NULL,
	title          VARCHAR(200) NOT NULL,
	price          BIGINT       NOT NULL,
	original_price BIGINT       NOT NULL,
	quantity       BIGINT       NOT NULL,
	per_user_limit INT          NOT NULL,
	starts_at      DATETIME(6)  NOT NULL,
	ends_at        DATETIME(6)  NOT NULL,
	cancelled_at   DATETIME(6)  NULL,
	closed         TINYINT      NOT NULL DEFAULT 0, -- the pool was closed (ended or cancelled)
	created_at     DATETIME(6)  NOT NULL,
	updated_at     DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_flashsale_sales_merchant (merchant_id, id),
	KEY ix_flashsale_sales_window (ends_at, starts_at),
	CONSTRAINT ck_flashsale_sales CHECK (quantity > 0 AND per_user_limit > 0 AND price > 0 AND ends_at > starts_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- A ticket is an accepted attempt once the intake took it up: ordered (with its order) or
-- failed (with a code). returned: its order was cancelled or timed out and its units went
-- back to the sale (they no longer count toward the buyer's limit).
CREATE TABLE flashsale_tickets (
	id          BIGINT      NOT NULL,
	sale_id     BIGINT      NOT NULL,
	buyer_id    BIGINT      NOT NULL,
	quantity    INT         NOT NULL,
	address_id  BIGINT      NOT NULL,
	status      VARCHAR(16) NOT NULL, -- ordered | failed
	code        VARCHAR(64) NOT NULL DEFAULT '',
	order_id    BIGINT      NOT NULL DEFAULT 0,
	checkout_id BIGINT      NOT NULL DEFAULT 0,
	returned    TINYINT     NOT NULL DEFAULT 0,
	created_at  DATETIME(6) NOT NULL,
	updated_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (id),
	KEY ix_flashsale_tickets_buyer (sale_id, buyer_id, status),
	KEY ix_flashsale_tickets_order (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE flashsale_tickets;
DROP TABLE flashsale_sales;
