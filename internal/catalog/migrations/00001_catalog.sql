-- +goose Up
-- Catalog tables on db.main. IDs come from the platform ID generator. Every merchant-facing
-- statement filters products and SKUs by merchant_id so another merchant's rows are not found.
CREATE TABLE catalog_categories (
	id                 BIGINT       NOT NULL,
	parent_id          BIGINT       NULL,
	name               VARCHAR(100) NOT NULL,
	-- commission_rate_bp is the platform's commission in basis points (1/100 of a percent).
	commission_rate_bp INT          NOT NULL DEFAULT 0,
	sort               INT          NOT NULL DEFAULT 0,
	created_at         DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_catalog_categories_parent (parent_id, sort, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE catalog_brands (
	id         BIGINT       NOT NULL,
	name       VARCHAR(100) NOT NULL,
	created_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY ux_catalog_brands_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Attribute templates: kind 'spec' attributes are shown on the product page; kind 'sale'
-- attributes define the SKUs (every SKU's attrs use exactly the category's sale attributes).
-- allowed_values is a JSON array, NULL for free text.
CREATE TABLE catalog_category_attributes (
	category_id    BIGINT      NOT NULL,
	kind           VARCHAR(8)  NOT NULL,
	name           VARCHAR(64) NOT NULL,
	allowed_values TEXT        NULL,
	sort           INT         NOT NULL DEFAULT 0,
	PRIMARY KEY (category_id, kind, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Products (SPU). description is sanitized HTML; images is a JSON array of URLs, specs a
-- JSON object; price_min/price_max are the SKU price range in fen.
CREATE TABLE catalog_products (
	id            BIGINT       NOT NULL,
	merchant_id   BIGINT       NOT NULL,
	category_id   BIGINT       NOT NULL,
	brand_id      BIGINT       NULL,
	title         VARCHAR(200) NOT NULL,
	subtitle      VARCHAR(200) NOT NULL DEFAULT '',
	description   MEDIUMTEXT   NOT NULL,
	images        MEDIUMTEXT   NOT NULL,
	specs         MEDIUMTEXT   NOT NULL,
	status        VARCHAR(20)  NOT NULL,
	reject_reason VARCHAR(500) NOT NULL DEFAULT '',
	price_min     BIGINT       NOT NULL,
	price_max     BIGINT       NOT NULL,
	created_at    DATETIME(6)  NOT NULL,
	updated_at    DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_catalog_products_merchant (merchant_id, status, id),
	KEY ix_catalog_products_status (status, id),
	CONSTRAINT ck_catalog_products_status CHECK (status IN ('draft','pending_review','on_sale','rejected','off_shelf')),
	CONSTRAINT ck_catalog_products_price CHECK (price_min > 0 AND price_max >= price_min)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- SKUs. attrs_key is the SHA-256 of the canonical attrs (sorted keys) so one product cannot
-- have two SKUs with the same combination.
CREATE TABLE catalog_skus (
	id          BIGINT      NOT NULL,
	product_id  BIGINT      NOT NULL,
	merchant_id BIGINT      NOT NULL,
	code        VARCHAR(64) NOT NULL,
	attrs       TEXT        NOT NULL,
	attrs_key   CHAR(64)    NOT NULL,
	price       BIGINT      NOT NULL,
	created_at  DATETIME(6) NOT NULL,
	updated_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY ux_catalog_skus_code (product_id, code),
	UNIQUE KEY ux_catalog_skus_attrs (product_id, attrs_key),
	KEY ix_catalog_skus_merchant (merchant_id, id),
	CONSTRAINT ck_catalog_skus_price CHECK (price > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE catalog_skus;
DROP TABLE catalog_products;
DROP TABLE catalog_category_attributes;
DROP TABLE catalog_brands;
DROP TABLE catalog_categories;
