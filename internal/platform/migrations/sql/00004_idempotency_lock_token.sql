-- +goose Up
-- lock_token fences the request that holds an in-flight key: a request that lost its lock
-- (it ran past locked_until and another took the key over) can no longer store or delete.
ALTER TABLE platform_idempotency_keys ADD COLUMN lock_token BINARY(16) NULL AFTER state;

-- +goose Down
ALTER TABLE platform_idempotency_keys DROP COLUMN lock_token;
