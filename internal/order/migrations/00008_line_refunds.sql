-- +goose Up
-- Line refunds and settlement facts (API.md, "Refunds and disputes", "Settlement").
-- order_items.commission_rate_bp: the platform's commission rate of the line, fixed when the
-- order is placed (merchant override, else the category chain, else the platform default),
-- so a later rate change never rewrites history. refunded_quantity: units of the line
-- refunded so far (never above quantity).
ALTER TABLE order_items
	ADD COLUMN commission_rate_bp INT NOT NULL DEFAULT 0,
	ADD COLUMN refunded_quantity  INT NOT NULL DEFAULT 0,
	ADD CONSTRAINT ck_order_items_refunded CHECK (refunded_quantity >= 0 AND refunded_quantity <= quantity);

-- refunded_amount: money refunded so far (never above total_amount). refund_items: the open
-- request's lines as JSON [{sku_id, quantity}] ('' = every unit not refunded yet).
ALTER TABLE order_orders
	ADD COLUMN refunded_amount BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN refund_items    TEXT   NULL,
	ADD CONSTRAINT ck_order_orders_refunded CHECK (refunded_amount >= 0 AND refunded_amount <= total_amount);

-- One row per refund carried out (money back through the gateway, request number = id),
-- written in the transaction that records it on the order, on the buyer's shard.
-- after_completion: the order had completed before (settlement reverses posted lines).
CREATE TABLE order_refunds (
	id               BIGINT       NOT NULL,
	order_id         BIGINT       NOT NULL,
	amount           BIGINT       NOT NULL,
	items            TEXT         NOT NULL, -- JSON [{sku_id, quantity}]
	reason           VARCHAR(500) NOT NULL,
	after_completion TINYINT      NOT NULL,
	created_at       DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_order_refunds_order (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Orders refunded before this migration refunded every unit.
UPDATE order_orders SET refunded_amount = total_amount WHERE status = 'refunded';
UPDATE order_items i JOIN order_orders o ON o.id = i.order_id AND o.created_at = i.created_at
	SET i.refunded_quantity = i.quantity WHERE o.status = 'refunded';

-- +goose Down
DROP TABLE order_refunds;
ALTER TABLE order_orders DROP CONSTRAINT ck_order_orders_refunded, DROP COLUMN refund_items, DROP COLUMN refunded_amount;
ALTER TABLE order_items DROP CONSTRAINT ck_order_items_refunded, DROP COLUMN refunded_quantity, DROP COLUMN commission_rate_bp;
