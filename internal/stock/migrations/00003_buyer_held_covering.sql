-- +goose Up
-- The per-buyer hold cap sums a buyer's held units of a SKU under the SKU's lock, for every
-- reservation batch: with quantity in the index that sum is read from the index alone
-- instead of one primary-key lookup per held line.
ALTER TABLE stock_reservations DROP KEY ix_stock_reservations_buyer,
	ADD KEY ix_stock_reservations_buyer (buyer_id, sku_id, status, quantity);

-- +goose Down
ALTER TABLE stock_reservations DROP KEY ix_stock_reservations_buyer,
	ADD KEY ix_stock_reservations_buyer (buyer_id, sku_id, status);
