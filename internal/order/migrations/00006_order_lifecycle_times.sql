-- +goose Up
-- When an order was shipped and completed: the auto-complete worker completes shipped
-- orders order.auto_complete_after past shipped_at, and a refund from completed is allowed
-- within order.after_sale_window of completed_at. ALTER TABLE keeps the RANGE partitioning
-- (MySQL and MariaDB rebuild each partition); the index is local to each partition like
-- every index of a partitioned table, which serves the worker's per-shard scan.
ALTER TABLE order_orders
	ADD COLUMN shipped_at   DATETIME(6) NULL AFTER paid_at,
	ADD COLUMN completed_at DATETIME(6) NULL AFTER shipped_at,
	ADD KEY ix_order_orders_shipped (status, shipped_at);

-- Orders shipped or completed before this migration (also those in a refund request that
-- a rejection returns there): their last change is the best known time, never earlier
-- than the real one, so neither the worker nor the window acts too early.
UPDATE order_orders SET shipped_at = updated_at
	WHERE status = 'shipped' OR (status = 'refund_requested' AND prev_status = 'shipped');
UPDATE order_orders SET completed_at = updated_at
	WHERE status = 'completed' OR (status = 'refund_requested' AND prev_status = 'completed');

-- +goose Down
ALTER TABLE order_orders
	DROP KEY ix_order_orders_shipped,
	DROP COLUMN completed_at,
	DROP COLUMN shipped_at;
