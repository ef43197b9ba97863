-- +goose Up
-- The outbox relay holds back an aggregate's later events while an earlier one waits out a
-- retry backoff; this index makes that check one probe per claimed row.
CREATE INDEX ix_platform_outbox_aggregate ON platform_outbox (aggregate_id, status, available_at);

-- +goose Down
DROP INDEX ix_platform_outbox_aggregate ON platform_outbox;
