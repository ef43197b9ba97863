-- +goose Up
-- Disputes (API.md, "Refunds and disputes"). refund_rejected_at: when the merchant
-- rejected the order's latest refund request, which the buyer may then escalate to the
-- platform (refund_disputed). A new request clears it and so does the escalation (one
-- dispute per rejected request); NULL: nothing to escalate. ALTER TABLE applies to every
-- partition of the RANGE-partitioned table; a REORGANIZE of pmax keeps the column.
ALTER TABLE order_orders ADD COLUMN refund_rejected_at DATETIME(6) NULL;
ALTER TABLE order_orders DROP CONSTRAINT ck_order_orders_status;
ALTER TABLE order_orders ADD CONSTRAINT ck_order_orders_status CHECK (status IN ('pending_payment','paid','shipped',
	'completed','cancelled','refund_requested','refund_disputed','refunded'));

-- +goose Down
ALTER TABLE order_orders DROP CONSTRAINT ck_order_orders_status;
ALTER TABLE order_orders ADD CONSTRAINT ck_order_orders_status CHECK (status IN ('pending_payment','paid','shipped',
	'completed','cancelled','refund_requested','refunded'));
ALTER TABLE order_orders DROP COLUMN refund_rejected_at;
