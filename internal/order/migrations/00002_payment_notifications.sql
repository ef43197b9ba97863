-- +goose Up
-- One row per payment notification applied, on the payment's shard (a notification is
-- routed by its payment ID, so every redelivery of it lands on the same shard). It is
-- inserted in the transaction that applies the notification: a duplicate (provider,
-- notify_id) means the notification was already applied, and the redelivery is answered
-- without changing anything.
CREATE TABLE order_payment_notifications (
	provider    VARCHAR(32)  NOT NULL,
	notify_id   VARCHAR(128) NOT NULL,
	payment_id  BIGINT       NOT NULL,
	status      VARCHAR(20)  NOT NULL,
	amount      BIGINT       NOT NULL,
	mismatch    TINYINT      NOT NULL DEFAULT 0,
	received_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (provider, notify_id),
	KEY ix_order_payment_notifications_payment (payment_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE order_payment_notifications;
