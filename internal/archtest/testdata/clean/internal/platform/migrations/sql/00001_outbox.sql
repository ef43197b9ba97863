-- +goose Up
CREATE TABLE platform_outbox (id BIGINT NOT NULL PRIMARY KEY);
-- +goose Down
DROP TABLE platform_outbox;
