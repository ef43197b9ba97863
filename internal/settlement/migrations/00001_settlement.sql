-- +goose Up
-- The settlement ledger on db.main (docs/adr/0026).
--
-- A posting is one fact (an order's completion, one refund, a release of pending money, a
-- payout); fact_key is unique, so a fact posts once whatever event or retry carries it.
CREATE TABLE settlement_postings (
	id           BIGINT      NOT NULL,
	fact_key     VARCHAR(64) NOT NULL,
	kind         VARCHAR(16) NOT NULL,
	merchant_id  BIGINT      NOT NULL,
	order_id     BIGINT      NOT NULL DEFAULT 0,
	refund_id    BIGINT      NOT NULL DEFAULT 0,
	statement_id BIGINT      NOT NULL DEFAULT 0,
	created_at   DATETIME(6) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY ux_settlement_postings_fact (fact_key),
	KEY ix_settlement_postings_order (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The double-entry journal: a posting's lines sum to zero. merchant_id is the account's
-- owner (0 for the platform's accounts). Lines are never changed.
CREATE TABLE settlement_lines (
	id          BIGINT      NOT NULL AUTO_INCREMENT,
	posting_id  BIGINT      NOT NULL,
	account     VARCHAR(24) NOT NULL,
	merchant_id BIGINT      NOT NULL,
	amount      BIGINT      NOT NULL,
	PRIMARY KEY (id),
	KEY ix_settlement_lines_posting (posting_id),
	KEY ix_settlement_lines_account (account, merchant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The merchants' sub-ledger: what each posting means for the merchant (income,
-- commission, refund, commission_refund), signed from the merchant's side; status is the
-- merchant account the money is in now (its moves are release and payout postings).
CREATE TABLE settlement_entries (
	id           BIGINT      NOT NULL,
	merchant_id  BIGINT      NOT NULL,
	posting_id   BIGINT      NOT NULL,
	kind         VARCHAR(24) NOT NULL,
	order_id     BIGINT      NOT NULL DEFAULT 0,
	refund_id    BIGINT      NOT NULL DEFAULT 0,
	amount       BIGINT      NOT NULL,
	status       VARCHAR(16) NOT NULL,
	available_at DATETIME(6) NOT NULL,
	statement_id BIGINT      NULL,
	created_at   DATETIME(6) NOT NULL,
	PRIMARY KEY (id),
	KEY ix_settlement_entries_merchant (merchant_id, id),
	KEY ix_settlement_entries_due (status, available_at),
	KEY ix_settlement_entries_unstated (merchant_id, status, statement_id, available_at),
	KEY ix_settlement_entries_statement (statement_id),
	KEY ix_settlement_entries_posting (posting_id),
	CONSTRAINT ck_settlement_entries_status CHECK (status IN ('pending','available','paid_out'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Each merchant's balances as counters, moved in the transaction of every posting; the
-- check compares them with the journal and the entries.
CREATE TABLE settlement_balances (
	merchant_id BIGINT      NOT NULL,
	pending     BIGINT      NOT NULL DEFAULT 0,
	available   BIGINT      NOT NULL DEFAULT 0,
	paid_out    BIGINT      NOT NULL DEFAULT 0,
	updated_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (merchant_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Statements: per merchant, the available entries of a period (statement_id on them).
-- Income, commission and refunds are magnitudes; net_amount = income - commission - refunds.
CREATE TABLE settlement_statements (
	id          BIGINT       NOT NULL,
	merchant_id BIGINT       NOT NULL,
	period_end  DATETIME(6)  NOT NULL,
	income      BIGINT       NOT NULL,
	commission  BIGINT       NOT NULL,
	refunds     BIGINT       NOT NULL,
	net_amount  BIGINT       NOT NULL,
	status      VARCHAR(16)  NOT NULL,
	reference   VARCHAR(128) NOT NULL DEFAULT '',
	paid_at     DATETIME(6)  NULL,
	created_at  DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_settlement_statements_merchant (merchant_id, id),
	KEY ix_settlement_statements_status (status, id),
	CONSTRAINT ck_settlement_statements_status CHECK (status IN ('issued','paid'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE settlement_statements;
DROP TABLE settlement_balances;
DROP TABLE settlement_entries;
DROP TABLE settlement_lines;
DROP TABLE settlement_postings;
