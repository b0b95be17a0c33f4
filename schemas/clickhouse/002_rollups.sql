-- Rollups at minute, hour and day granularity. One row per (merchant, site, bucket, event
-- name, processing-logic version): `events` and `visit_starts` sum across rows and buckets;
-- `visitors` is a mergeable uniq state, so unique visitors over any range are
-- uniqMerge(visitors), never a sum of per-bucket counts. Bots are excluded before rolling up.
-- AggregatingMergeTree merges rows of the same key in the background; queries aggregate anyway,
-- so they are correct before and after merges.
--
-- Which rollup answers a query: day buckets for UTC days, hour buckets for other time zones
-- with whole-hour offsets, minute buckets otherwise (e.g. UTC+05:30).

CREATE TABLE IF NOT EXISTS {db}.rollup_minute
(
    merchant_id    UInt64,
    site_id        UInt64,
    bucket         DateTime('UTC'),
    name           LowCardinality(String),
    events         SimpleAggregateFunction(sum, UInt64),
    visit_starts   SimpleAggregateFunction(sum, UInt64),
    revenue_micros SimpleAggregateFunction(sum, Int64),
    visitors       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toDate(bucket)
ORDER BY (merchant_id, site_id, bucket, name)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.rollup_hour
(
    merchant_id    UInt64,
    site_id        UInt64,
    bucket         DateTime('UTC'),
    name           LowCardinality(String),
    events         SimpleAggregateFunction(sum, UInt64),
    visit_starts   SimpleAggregateFunction(sum, UInt64),
    revenue_micros SimpleAggregateFunction(sum, Int64),
    visitors       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (merchant_id, site_id, bucket, name)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.rollup_day
(
    merchant_id    UInt64,
    site_id        UInt64,
    bucket         Date,
    name           LowCardinality(String),
    events         SimpleAggregateFunction(sum, UInt64),
    visit_starts   SimpleAggregateFunction(sum, UInt64),
    revenue_micros SimpleAggregateFunction(sum, Int64),
    visitors       AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYear(bucket)
ORDER BY (merchant_id, site_id, bucket, name)
SETTINGS non_replicated_deduplication_window = 10000;
