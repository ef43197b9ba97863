-- +goose Up
-- Reservations replace the old rows FROM order_orders (a comment, not SQL).
CREATE TABLE stock_levels (
    sku_id BIGINT NOT NULL PRIMARY KEY,
    available INT NOT NULL
);
CREATE TABLE IF NOT EXISTS `stock_reservations` (
    order_id BIGINT NOT NULL,
    sku_id BIGINT NOT NULL,
    FOREIGN KEY (sku_id) REFERENCES stock_levels (sku_id)
);

-- +goose Down
DROP TABLE stock_reservations;
DROP TABLE stock_levels;
