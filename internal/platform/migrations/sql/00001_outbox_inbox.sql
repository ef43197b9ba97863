-- +goose Up
CREATE TABLE platform_outbox (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    event_id     CHAR(36)        NOT NULL,
    topic        VARCHAR(200)    NOT NULL,
    aggregate_id VARCHAR(200)    NOT NULL,
    event_type   VARCHAR(200)    NOT NULL,
    envelope     MEDIUMBLOB      NOT NULL,
    headers      TEXT            NULL,
    status       TINYINT         NOT NULL DEFAULT 0 COMMENT '0 pending, 1 published, 2 dead',
    attempts     INT             NOT NULL DEFAULT 0,
    available_at DATETIME(6)     NOT NULL,
    last_error   VARCHAR(1000)   NULL,
    created_at   DATETIME(6)     NOT NULL,
    published_at DATETIME(6)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_platform_outbox_event (event_id),
    KEY ix_platform_outbox_claim (status, id),
    KEY ix_platform_outbox_published (status, published_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE platform_inbox (
    consumer     VARCHAR(150) NOT NULL,
    event_id     CHAR(36)     NOT NULL,
    processed_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (consumer, event_id),
    KEY ix_platform_inbox_processed (processed_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE platform_inbox;
DROP TABLE platform_outbox;
