-- +goose Up
-- Accounts, refresh tokens, roles and third-party identities: platform-wide data on db.main.
CREATE TABLE user_users (
	id            BIGINT       NOT NULL,
	-- Normalized (trimmed, lower-case); NULL for a third-party account without a verified email.
	email         VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	-- argon2id in PHC format; NULL for accounts that only sign in through a provider.
	password_hash VARCHAR(255) NULL,
	nickname      VARCHAR(64)  NOT NULL DEFAULT '',
	created_at    DATETIME(6)  NOT NULL,
	updated_at    DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY uq_user_users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Refresh tokens are stored as SHA-256 of the opaque token. Every refresh marks the presented
-- token used and issues the next one in the same family; presenting a used token revokes
-- the family. status: 0 active, 1 used, 2 revoked.
CREATE TABLE user_refresh_tokens (
	id         BIGINT      NOT NULL,
	token_hash BINARY(32)  NOT NULL,
	family_id  BIGINT      NOT NULL,
	user_id    BIGINT      NOT NULL,
	status     TINYINT     NOT NULL DEFAULT 0,
	expires_at DATETIME(6) NOT NULL,
	created_at DATETIME(6) NOT NULL,
	used_at    DATETIME(6) NULL,
	PRIMARY KEY (id),
	UNIQUE KEY uq_user_refresh_tokens_hash (token_hash),
	KEY ix_user_refresh_tokens_family (family_id, status),
	KEY ix_user_refresh_tokens_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Roles are data; the permissions they grant are constants in code (internal/user/access.go).
-- scope: 'platform' roles are bound with merchant_id 0, 'merchant' roles to one merchant.
CREATE TABLE user_roles (
	name        VARCHAR(64)  NOT NULL,
	scope       VARCHAR(16)  NOT NULL,
	description VARCHAR(255) NOT NULL DEFAULT '',
	PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_role_permissions (
	role       VARCHAR(64)  NOT NULL,
	permission VARCHAR(100) NOT NULL,
	PRIMARY KEY (role, permission),
	CONSTRAINT fk_user_role_permissions_role FOREIGN KEY (role) REFERENCES user_roles (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- (user, role, merchant scope); merchant_id 0 = platform-wide. buyer is implicit, never stored.
CREATE TABLE user_role_bindings (
	user_id     BIGINT      NOT NULL,
	role        VARCHAR(64) NOT NULL,
	merchant_id BIGINT      NOT NULL DEFAULT 0,
	granted_by  BIGINT      NOT NULL DEFAULT 0,
	created_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (user_id, role, merchant_id),
	KEY ix_user_role_bindings_merchant (merchant_id, role),
	CONSTRAINT fk_user_role_bindings_role FOREIGN KEY (role) REFERENCES user_roles (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Third-party identities (OIDC): (provider, subject) -> user.
CREATE TABLE user_identities (
	provider   VARCHAR(64)  NOT NULL,
	subject    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	user_id    BIGINT       NOT NULL,
	email      VARCHAR(254) NULL,
	created_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (provider, subject),
	KEY ix_user_identities_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO user_roles (name, scope, description) VALUES
	('platform_admin',    'platform', 'Runs the platform: every admin permission, including granting roles'),
	('platform_operator', 'platform', 'Reviews merchants and products, manages the catalog, moderates'),
	('merchant_owner',    'merchant', 'Owns one merchant: everything in the merchant admin'),
	('merchant_staff',    'merchant', 'Works for one merchant: products, stock, orders, live, auctions');

INSERT INTO user_role_permissions (role, permission) VALUES
	('platform_admin', 'admin.users'),
	('platform_admin', 'admin.merchant_applications.review'),
	('platform_admin', 'admin.merchants.manage'),
	('platform_admin', 'admin.catalog.manage'),
	('platform_admin', 'admin.products.review'),
	('platform_admin', 'admin.orders.view'),
	('platform_admin', 'admin.live.moderate'),
	('platform_admin', 'admin.auctions.moderate'),
	('platform_admin', 'admin.settlement.manage'),
	('platform_operator', 'admin.merchant_applications.review'),
	('platform_operator', 'admin.merchants.manage'),
	('platform_operator', 'admin.catalog.manage'),
	('platform_operator', 'admin.products.review'),
	('platform_operator', 'admin.orders.view'),
	('platform_operator', 'admin.live.moderate'),
	('platform_operator', 'admin.auctions.moderate'),
	('merchant_owner', 'merchant.profile.view'),
	('merchant_owner', 'merchant.profile.edit'),
	('merchant_owner', 'merchant.staff'),
	('merchant_owner', 'merchant.products'),
	('merchant_owner', 'merchant.stock'),
	('merchant_owner', 'merchant.orders'),
	('merchant_owner', 'merchant.refunds'),
	('merchant_owner', 'merchant.live'),
	('merchant_owner', 'merchant.auctions'),
	('merchant_owner', 'merchant.settlement'),
	('merchant_staff', 'merchant.profile.view'),
	('merchant_staff', 'merchant.products'),
	('merchant_staff', 'merchant.stock'),
	('merchant_staff', 'merchant.orders'),
	('merchant_staff', 'merchant.refunds'),
	('merchant_staff', 'merchant.live'),
	('merchant_staff', 'merchant.auctions');

-- +goose Down
DROP TABLE user_identities;
DROP TABLE user_role_bindings;
DROP TABLE user_role_permissions;
DROP TABLE user_roles;
DROP TABLE user_refresh_tokens;
DROP TABLE user_users;
