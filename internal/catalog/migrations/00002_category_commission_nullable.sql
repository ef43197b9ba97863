-- +goose Up
-- A category's commission_rate_bp becomes optional: NULL means "no rate of its own", and
-- the category inherits the nearest ancestor's rate (else settlement.default_commission_bp
-- applies); an explicit 0 is a 0 % rate that stops the inheritance. Until now an absent
-- rate was stored as 0, indistinguishable from 0 %; no commission was ever applied from
-- these rates, so every existing 0 is taken as "no rate" and becomes NULL.
ALTER TABLE catalog_categories MODIFY commission_rate_bp INT NULL DEFAULT NULL;
UPDATE catalog_categories SET commission_rate_bp = NULL WHERE commission_rate_bp = 0;

-- +goose Down
UPDATE catalog_categories SET commission_rate_bp = 0 WHERE commission_rate_bp IS NULL;
ALTER TABLE catalog_categories MODIFY commission_rate_bp INT NOT NULL DEFAULT 0;
