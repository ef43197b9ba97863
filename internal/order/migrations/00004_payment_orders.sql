-- +goose Up
-- The orders a payment covers, one row each, on the payment's shard (the buyer's, like its
-- orders), written in the transaction that creates the payment: the checkout's orders that
-- were pending_payment at that moment, each with its amount. The payment's amount is their
-- sum, and a notification moves only these orders (ADR 0017, "Payment sets"). Keyed by the
-- payment and not partitioned: like order_payments it is read by payment ID (and by order ID
-- for a refund), and an order_orders partition never has to drop with it.
CREATE TABLE order_payment_orders (
	payment_id BIGINT NOT NULL,
	order_id   BIGINT NOT NULL,
	amount     BIGINT NOT NULL,
	PRIMARY KEY (payment_id, order_id),
	KEY ix_order_payment_orders_order (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Payments made before this table: a pending one covers its checkout's orders still pending
-- and those cancelled after it was created (pending when it was created); a succeeded or
-- refunded one (paid_at set: it succeeded first) covers the orders it moved to paid (no
-- longer pending or cancelled). A failed payment — refunded too after a mismatch — paid
-- nothing and covers nothing.
INSERT INTO order_payment_orders (payment_id, order_id, amount)
SELECT p.id, o.id, o.total_amount FROM order_payments p JOIN order_orders o ON o.checkout_id = p.checkout_id
WHERE (p.status = 'pending' AND (o.status = 'pending_payment' OR (o.status = 'cancelled' AND o.updated_at >= p.created_at)))
	OR (p.status IN ('succeeded', 'refunded') AND p.paid_at IS NOT NULL
		AND o.status NOT IN ('pending_payment', 'cancelled') AND o.paid_at IS NOT NULL);

-- +goose Down
DROP TABLE order_payment_orders;
