-- +goose Up
CREATE TABLE platform_idempotency_keys (
    user_id          BIGINT       NOT NULL,
    idem_key         VARCHAR(255) NOT NULL,
    request_hash     BINARY(32)   NOT NULL,
    state            TINYINT      NOT NULL DEFAULT 0 COMMENT '0 in flight, 1 done',
    response_status  INT          NULL,
    response_headers TEXT         NULL,
    response_body    MEDIUMBLOB   NULL,
    locked_until     DATETIME(6)  NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    expires_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    KEY ix_platform_idempotency_expires (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down
DROP TABLE platform_idempotency_keys;
