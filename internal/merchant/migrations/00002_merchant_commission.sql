-- +goose Up
-- commission_rate_bp is the platform's commission on this merchant's sales in basis points
-- (0..10000), set by an operator; it overrides the product's category rate. NULL: no
-- override (the category's rate, else settlement.default_commission_bp, applies).
ALTER TABLE merchant_merchants ADD COLUMN commission_rate_bp INT NULL DEFAULT NULL AFTER status;

-- +goose Down
ALTER TABLE merchant_merchants DROP COLUMN commission_rate_bp;
