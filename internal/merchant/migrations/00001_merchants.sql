-- +goose Up
-- Merchant applications, merchants and their staff: platform-wide data on db.main.
-- status: pending | approved | rejected. pending_applicant is the applicant while the
-- application is pending and NULL afterwards, so the unique key allows one pending
-- application per user (NULLs never collide) on MySQL and MariaDB alike.
CREATE TABLE merchant_applications (
	id                BIGINT       NOT NULL,
	applicant_id      BIGINT       NOT NULL,
	pending_applicant BIGINT       NULL,
	shop_name         VARCHAR(64)  NOT NULL,
	company_name      VARCHAR(128) NOT NULL,
	license_no        VARCHAR(64)  NOT NULL,
	contact_name      VARCHAR(64)  NOT NULL,
	contact_phone     VARCHAR(32)  NOT NULL,
	status            VARCHAR(16)  NOT NULL,
	reason            VARCHAR(500) NOT NULL DEFAULT '',
	merchant_id       BIGINT       NULL,
	reviewed_by       BIGINT       NULL,
	reviewed_at       DATETIME(6)  NULL,
	created_at        DATETIME(6)  NOT NULL,
	updated_at        DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY uq_merchant_applications_pending (pending_applicant),
	KEY ix_merchant_applications_applicant (applicant_id, id),
	KEY ix_merchant_applications_status (status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- status: active | suspended. application_id is unique: one merchant per approved application.
CREATE TABLE merchant_merchants (
	id             BIGINT        NOT NULL,
	application_id BIGINT        NOT NULL,
	owner_id       BIGINT        NOT NULL,
	shop_name      VARCHAR(64)   NOT NULL,
	company_name   VARCHAR(128)  NOT NULL,
	description    VARCHAR(1000) NOT NULL DEFAULT '',
	logo_url       VARCHAR(512)  NOT NULL DEFAULT '',
	contact_name   VARCHAR(64)   NOT NULL,
	contact_phone  VARCHAR(32)   NOT NULL,
	status         VARCHAR(16)   NOT NULL,
	created_at     DATETIME(6)   NOT NULL,
	updated_at     DATETIME(6)   NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY uq_merchant_merchants_application (application_id),
	KEY ix_merchant_merchants_owner (owner_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- role: operator | customer_service. A user works for one merchant at most (uq on user_id).
CREATE TABLE merchant_staff (
	merchant_id BIGINT      NOT NULL,
	user_id     BIGINT      NOT NULL,
	role        VARCHAR(32) NOT NULL,
	created_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (merchant_id, user_id),
	UNIQUE KEY uq_merchant_staff_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE merchant_staff;
DROP TABLE merchant_merchants;
DROP TABLE merchant_applications;
