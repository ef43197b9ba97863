-- +goose Up
-- Staff invitations: adding a staff member by e-mail invites them; they become staff (the
-- merchant_staff row and the merchant_staff role) only when they accept, signed in as
-- themselves. One invitation per (merchant, user); a user may hold invitations from several
-- merchants and accepts at most one (merchant_staff.user_id is unique).
CREATE TABLE merchant_staff_invitations (
	merchant_id BIGINT      NOT NULL,
	user_id     BIGINT      NOT NULL,
	role        VARCHAR(32) NOT NULL,
	invited_by  BIGINT      NOT NULL,
	created_at  DATETIME(6) NOT NULL,
	expires_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (merchant_id, user_id),
	KEY ix_merchant_staff_invitations_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE merchant_staff_invitations;
