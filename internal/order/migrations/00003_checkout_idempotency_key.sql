-- +goose Up
-- The Idempotency-Key of the request that placed a checkout, in the checkout's own
-- transaction: a retry after a crash between that commit and the idempotency middleware
-- storing its response (whose key lock then lapses and lets the retry run again) finds the
-- checkout by key and answers with it instead of placing a second one. NULL: placed without
-- a key (not through the API).
ALTER TABLE order_checkouts ADD COLUMN idem_key VARCHAR(255) NULL,
	ADD UNIQUE KEY ux_order_checkouts_idem_key (buyer_id, idem_key);

-- +goose Down
ALTER TABLE order_checkouts DROP KEY ux_order_checkouts_idem_key, DROP COLUMN idem_key;
