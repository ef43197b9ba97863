-- +goose Up
-- Auctions on db.main. One row per lot holds its whole hot state (current price, leader,
-- the leader's secret maximum, bid count, end time after soft-close extensions) and a
-- version that grows with every change: each bid locks the row (SELECT ... FOR UPDATE),
-- so bids on one lot are serialized and bid_count / version number them in commit order.
CREATE TABLE auction_lots (
	id              BIGINT       NOT NULL,
	merchant_id     BIGINT       NOT NULL,
	product_id      BIGINT       NOT NULL DEFAULT 0,
	sku_id          BIGINT       NOT NULL DEFAULT 0,
	title           VARCHAR(200) NOT NULL,
	status          VARCHAR(16)  NOT NULL,
	start_price     BIGINT       NOT NULL,
	increment       BIGINT       NOT NULL,
	ladder          TEXT         NOT NULL,
	reserve_price   BIGINT       NOT NULL DEFAULT 0,
	starts_at       DATETIME(6)  NOT NULL,
	ends_at         DATETIME(6)  NOT NULL,
	extend_window_s INT          NOT NULL DEFAULT 0,
	extend_s        INT          NOT NULL DEFAULT 0,
	current_price   BIGINT       NOT NULL DEFAULT 0,
	bid_count       BIGINT       NOT NULL DEFAULT 0,
	leader_id       BIGINT       NOT NULL DEFAULT 0,
	leader_max      BIGINT       NOT NULL DEFAULT 0,
	version         BIGINT       NOT NULL DEFAULT 1,
	-- The winner's order: its ID is minted when the lot ends (on the winner's shard), so a
	-- retry after a crash asks the order module for the same order.
	winner_order_id BIGINT       NOT NULL DEFAULT 0,
	order_state     VARCHAR(16)  NOT NULL DEFAULT 'none',
	-- One replica at a time places the order: it claims the lot until this time.
	order_claimed_until DATETIME(6) NULL,
	-- Why the order module refused the order (order_state 'failed').
	order_error     VARCHAR(255) NOT NULL DEFAULT '',
	-- announced: the ended message went out to the lot's watchers.
	announced       TINYINT      NOT NULL DEFAULT 0,
	ended_at        DATETIME(6)  NULL,
	created_at      DATETIME(6)  NOT NULL,
	updated_at      DATETIME(6)  NOT NULL,
	PRIMARY KEY (id),
	KEY ix_auction_lots_due (status, starts_at),
	KEY ix_auction_lots_end (status, ends_at),
	KEY ix_auction_lots_merchant (merchant_id, id),
	KEY ix_auction_lots_after (status, order_state, announced),
	CONSTRAINT ck_auction_lots_status CHECK (status IN ('scheduled','running','ended'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Accepted bids. seq numbers a lot's bids in commit order (1, 2, ...); amount strictly
-- increases with seq. kind 'proxy' marks a bid the system placed on a maximum.
CREATE TABLE auction_bids (
	id         BIGINT      NOT NULL,
	lot_id     BIGINT      NOT NULL,
	seq        BIGINT      NOT NULL,
	bidder_id  BIGINT      NOT NULL,
	amount     BIGINT      NOT NULL,
	kind       VARCHAR(8)  NOT NULL,
	created_at DATETIME(6) NOT NULL,
	PRIMARY KEY (id),
	UNIQUE KEY ux_auction_bids_seq (lot_id, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE auction_bids;
DROP TABLE auction_lots;
