-- +goose Up
CREATE TABLE levels (
    sku_id BIGINT NOT NULL PRIMARY KEY
);
CREATE TABLE stock_reservations (
    sku_id BIGINT NOT NULL,
    FOREIGN KEY (sku_id) REFERENCES catalog_skus (id)
);
create table if not exists `catalog_shadow` (id BIGINT);
-- +goose Down
DROP TABLE stock_reservations;
