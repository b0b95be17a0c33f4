-- Event storage, ClickHouse SQL shared by the embedded engine (chDB) and ClickHouse servers.
-- {db} is replaced with the database name by the migrator.
--
-- "Partitioned by merchant and date" maps to ClickHouse like this:
--   * PARTITION BY date (days for event tables, months/years for coarser rollups): a partition
--     is a unit of retention and of rebuild, and the number of partitions stays small.
--     One partition per merchant would mean millions of parts: never.
--   * merchant_id leads every ORDER BY (the primary index), so one merchant's rows are
--     contiguous inside each part and a query for one merchant reads only its granules.
--   * Across servers, tables are sharded by merchant_id (see the scale-out docs), so one
--     merchant's data lives on one shard.
--
-- Exactly-once: Rollup inserts each block with an insert_deduplication_token derived from the
-- log range and the partition, and replays a crashed range with the same tokens; tables keep
-- the last 10,000 tokens (non_replicated_deduplication_window) to recognise a replay. Client
-- retries of the same event id are filtered against event_ids before anything is inserted.

-- Raw events: immutable, everything needed to recompute the rest. Reprocessing reads this.
CREATE TABLE IF NOT EXISTS {db}.events_raw
(
    merchant_id     UInt64,
    site_id         UInt64,
    event_id        FixedString(16),
    received_at     DateTime64(3, 'UTC'),
    client_time     DateTime64(3, 'UTC'),
    name            LowCardinality(String),
    url             String,
    referrer        String,
    props           Map(String, String),
    revenue_micros  Int64,
    currency        LowCardinality(String),
    screen_width    UInt32,
    engagement_ms   UInt32,
    visitor_id      UInt64,
    ip_prefix       String,
    user_agent      String,
    country         LowCardinality(String),
    log_source      LowCardinality(String),
    log_offset      UInt64
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (merchant_id, site_id, received_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Enriched events: raw plus everything derived by the current processing logic, shaped for
-- the dimensions merchants filter by. Rebuilt from events_raw by reprocessing.
CREATE TABLE IF NOT EXISTS {db}.events_enriched
(
    merchant_id      UInt64,
    site_id          UInt64,
    event_id         FixedString(16),
    received_at      DateTime64(3, 'UTC'),
    name             LowCardinality(String),
    hostname         LowCardinality(String),
    pathname         String,
    referrer         String,
    referrer_source  LowCardinality(String),
    utm_source       LowCardinality(String),
    utm_medium       LowCardinality(String),
    utm_campaign     LowCardinality(String),
    utm_content      String,
    utm_term         String,
    country          LowCardinality(String),
    device           LowCardinality(String),
    browser          LowCardinality(String),
    os               LowCardinality(String),
    is_bot           UInt8,
    props            Map(String, String),
    revenue_micros   Int64,
    currency         LowCardinality(String),
    engagement_ms    UInt32,
    visitor_id       UInt64,
    visit_id         UInt64,
    visit_start      UInt8,
    logic_version    UInt16,
    log_source       LowCardinality(String),
    log_offset       UInt64
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (merchant_id, site_id, received_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Event ids seen, for deduplicating client retries (same id, new log offset). Sorted by id
-- within a site so a batch of ids is a handful of index lookups. Kept 60 days: the dedup
-- window for resends.
CREATE TABLE IF NOT EXISTS {db}.event_ids
(
    merchant_id  UInt64,
    site_id      UInt64,
    event_id     FixedString(16),
    first_seen   DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(first_seen)
ORDER BY (merchant_id, site_id, event_id)
TTL toDateTime(first_seen) + INTERVAL 60 DAY
SETTINGS non_replicated_deduplication_window = 10000, index_granularity = 1024;
