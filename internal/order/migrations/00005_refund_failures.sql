-- +goose Up
-- Automatic refunds (a stock-lost order, a mismatched payment) the gateway did not carry
-- out, one row per refund, on the buyer's shard (the refund ID carries it, like every ID).
-- state 'refused': the gateway refused for a business reason; only an operator's retry
-- tries again. state 'retrying': a transient failure; the refund retry worker tries again at
-- next_retry_at, with backoff. A refund that succeeds deletes its row. The consumer that
-- met the failure has moved on: no partition waits for a refund (ADR 0017, "Parked refunds").
CREATE TABLE order_refund_failures (
	refund_id     BIGINT       NOT NULL,
	kind          VARCHAR(16)  NOT NULL, -- stock_lost | mismatch
	order_id      BIGINT       NOT NULL, -- 0 for a mismatched payment (it pays for no order)
	payment_id    BIGINT       NOT NULL,
	provider      VARCHAR(32)  NOT NULL,
	amount        BIGINT       NOT NULL,
	state         VARCHAR(16)  NOT NULL,
	reason        VARCHAR(512) NOT NULL,
	attempts      INT          NOT NULL,
	failed_at     DATETIME(6)  NOT NULL,
	next_retry_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (refund_id),
	KEY ix_order_refund_failures_order (order_id),
	KEY ix_order_refund_failures_due (state, next_retry_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE order_refund_failures;
