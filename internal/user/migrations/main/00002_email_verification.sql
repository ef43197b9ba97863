-- +goose Up
-- E-mail ownership: an address hands out access (roles, OIDC linking, staff invitations)
-- only once its owner proved it by a token mailed to it.
ALTER TABLE user_users ADD COLUMN email_verified_at DATETIME(6) NULL AFTER email;

-- Single-use tokens mailed to an address, stored as SHA-256 of the opaque token. email is
-- the address the token was sent to: a token for an address the account no longer has is void.
-- purpose: 'verify' (e-mail verification) | 'reset' (password reset).
CREATE TABLE user_email_tokens (
	token_hash BINARY(32)   NOT NULL,
	purpose    VARCHAR(16)  NOT NULL,
	user_id    BIGINT       NOT NULL,
	email      VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	expires_at DATETIME(6)  NOT NULL,
	created_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (token_hash),
	KEY ix_user_email_tokens_user (user_id, purpose),
	KEY ix_user_email_tokens_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The mail outbox: a row is written in the transaction that asks for the mail (registration,
-- a reset request); the mailer worker claims due rows (FOR UPDATE SKIP LOCKED), creates the
-- token, sends, and marks the row sent. No token is ever stored here.
-- status: 0 pending, 1 sent, 2 dead (gave up after mailMaxAttempts).
CREATE TABLE user_mail_queue (
	id              BIGINT       NOT NULL,
	kind            VARCHAR(16)  NOT NULL,
	user_id         BIGINT       NOT NULL,
	email           VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	status          TINYINT      NOT NULL DEFAULT 0,
	attempts        INT          NOT NULL DEFAULT 0,
	next_attempt_at DATETIME(6)  NOT NULL,
	last_error      VARCHAR(255) NOT NULL DEFAULT '',
	created_at      DATETIME(6)  NOT NULL,
	sent_at         DATETIME(6)  NULL,
	PRIMARY KEY (id),
	KEY ix_user_mail_queue_due (status, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE user_mail_queue;
DROP TABLE user_email_tokens;
ALTER TABLE user_users DROP COLUMN email_verified_at;
