-- Query API v2 pre-aggregates (docs/query-api.md, docs/query-performance.md).
--
-- 1. Every enriched event carries its visit's entry attributes (the first event's), stamped by
--    Rollup's Sessionizer, which knows the open visit (and restores it from these columns after
--    a restart). Under the contract a visit dimension takes the value of the visit's first event,
--    so stamping makes a visit dimension a plain column of each event: a filter on it selects
--    whole visits, and grouping by it puts all of a visit's events in one row, in a rollup as in
--    a scan. Bots have no visit: their entry columns stay ''. Rows built before this migration
--    take '' until reprocessed. entry_page and exit_page are not stamped: the contract takes them
--    from the visit's first and last pageview, unknown when a visit starts with another event or
--    until it ends.
-- Every ADD is IF NOT EXISTS, so the statement can run twice (see SchemaMigrator).
ALTER TABLE {db}.events_enriched ADD COLUMN IF NOT EXISTS visit_source LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_channel LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_referrer String DEFAULT '', ADD COLUMN IF NOT EXISTS visit_utm_source LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_utm_medium LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_utm_campaign LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_utm_content String DEFAULT '', ADD COLUMN IF NOT EXISTS visit_utm_term String DEFAULT '', ADD COLUMN IF NOT EXISTS visit_country LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_region LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_city LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_device LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_browser LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_browser_version LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_os LowCardinality(String) DEFAULT '', ADD COLUMN IF NOT EXISTS visit_os_version LowCardinality(String) DEFAULT '';

-- 2. The dimension rollup: per (merchant, site, dimension, UTC day, value) the counts a
--    dashboard's top lists and main graph read. dimension '' is the whole site (value ''), so
--    the main graph comes from here too; the others are the event dimensions page, hostname
--    (without www., as the query API shows it) and event, and the visit dimensions source, channel, utm_source, utm_medium,
--    utm_campaign, country, region, city, device, browser and os (their values stamped on each
--    event, above). Bots count in `bots` of the event dimensions only (bots have no visits).
--    `visitors` is an exact mergeable state (uniqExact): the contract promises exact distinct
--    visitors over any range, and merging per-day sets is exact where HyperLogLog-style uniq is
--    not. `visit_starts` counts visits exactly over whole UTC days, because visits end at UTC
--    midnight. Ordered by dimension before day, so one top list over 30 days is one contiguous
--    range of the primary key. Written by Rollup (per round and day, its own deduplication
--    token) and by reprocessing (per site-day and generation), from events_enriched, like the
--    other rollups; `generation` joins the key for the same reason as there (003).
CREATE TABLE IF NOT EXISTS {db}.rollup_dims_day
(
    merchant_id    UInt64,
    site_id        UInt64,
    dimension      LowCardinality(String),
    bucket         Date,
    value          String,
    events         SimpleAggregateFunction(sum, UInt64),
    pageviews      SimpleAggregateFunction(sum, UInt64),
    visit_starts   SimpleAggregateFunction(sum, UInt64),
    bots           SimpleAggregateFunction(sum, UInt64),
    visitors       AggregateFunction(uniqExact, UInt64),
    generation     UInt64
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (merchant_id, site_id, dimension, bucket, value, generation)
SETTINGS non_replicated_deduplication_window = 10000;
