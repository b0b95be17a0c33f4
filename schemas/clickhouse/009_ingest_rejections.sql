-- Dead letters: events ingest rejected (validation, one row per event) and batches it refused
-- for their origin (one row per batch, `events` = its size), so a merchant can read why data is
-- missing (GET /v1/sites/{site}/rejections). Bounded twice: ingest writes at most 100 rows per
-- site per minute (the rest is only counted in /metrics), and rows live 7 days (TTL; whole day
-- parts are dropped). Written by a background writer, never on the hot path; diagnostics, not
-- data, so no deduplication token. No IP address and no user agent are kept here.
CREATE TABLE IF NOT EXISTS {db}.ingest_rejections
(
    merchant_id  UInt64,
    site_id      UInt64,
    received_at  DateTime64(3, 'UTC'),
    reason       LowCardinality(String),
    origin       String,
    events       UInt32,
    detail       String
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (merchant_id, site_id, received_at)
TTL toDateTime(received_at) + INTERVAL 7 DAY DELETE
SETTINGS ttl_only_drop_parts = 1;
