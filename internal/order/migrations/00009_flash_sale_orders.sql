-- +goose Up
-- Flash-sale orders (issue 13): the sale an order came from (0: an ordinary order). Its
-- units were reserved from the sale's stock pool, and the flash-sale module returns them to
-- its gate when the order is cancelled or times out.
ALTER TABLE order_orders ADD COLUMN flash_sale_id BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE order_orders DROP COLUMN flash_sale_id;
