-- The visit rollup (docs/query-performance.md, "rollup_visits_day"): one row per visit and
-- round, merged per visit by AggregatingMergeTree, holding what the visit metrics need
-- (bounce_rate, visit_duration, views_per_visit, visits) and the visit dimensions, entry and
-- exit page included, so POST /v1/query answers them exactly without scanning events_enriched.
--
-- A visit lives within one UTC day (visitor ids, and so visits, end at UTC midnight) but spans
-- Rollup rounds: its first event can be written rounds before its last. So every column is a
-- mergeable state: times by min/max, counts by sum, entry/exit page by argMin/argMax states over
-- the pageviews' (received_at, log_offset), the same order the scan uses; the visit dimensions
-- are the entry attributes stamped on every event of the visit (010), equal on all its rows, so
-- `any` keeps them. Readers group by (bucket, visit_id) first (parts not yet merged hold several
-- rows of one visit), then aggregate over visits. People only: bots have no visit.
--
-- Written by Rollup (per round and day, token `rollup_visits_day:{range}`) and by reprocessing
-- (per site-day under the rebuild's generation), from events_enriched like the other rollups;
-- `generation` joins the key for the same reason as there (003). Sorted by day before visit, so
-- 30 days of one site are one contiguous range of the primary key. Days written before this
-- migration have no rows here until reprocessed. The entry/exit states (a path and a 16-byte key
-- each, the largest columns) are compressed with ZSTD rather than the default LZ4.
CREATE TABLE IF NOT EXISTS {db}.rollup_visits_day
(
    merchant_id            UInt64,
    site_id                UInt64,
    bucket                 Date,
    visit_id               UInt64,
    generation             UInt64,
    visitor_id             SimpleAggregateFunction(any, UInt64),
    first_at               SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_at                SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    pageviews              SimpleAggregateFunction(sum, UInt64),
    interactions           SimpleAggregateFunction(sum, UInt64),
    events                 SimpleAggregateFunction(sum, UInt64),
    engagement_ms          SimpleAggregateFunction(sum, UInt64),
    entry_page             AggregateFunction(argMin, String, Tuple(DateTime64(3, 'UTC'), UInt64)) CODEC(ZSTD(1)),
    exit_page              AggregateFunction(argMax, String, Tuple(DateTime64(3, 'UTC'), UInt64)) CODEC(ZSTD(1)),
    source                 SimpleAggregateFunction(any, LowCardinality(String)),
    channel                SimpleAggregateFunction(any, LowCardinality(String)),
    referrer               SimpleAggregateFunction(any, String),
    utm_source             SimpleAggregateFunction(any, LowCardinality(String)),
    utm_medium             SimpleAggregateFunction(any, LowCardinality(String)),
    utm_campaign           SimpleAggregateFunction(any, LowCardinality(String)),
    utm_content            SimpleAggregateFunction(any, String),
    utm_term               SimpleAggregateFunction(any, String),
    country                SimpleAggregateFunction(any, LowCardinality(String)),
    region                 SimpleAggregateFunction(any, LowCardinality(String)),
    city                   SimpleAggregateFunction(any, LowCardinality(String)),
    device                 SimpleAggregateFunction(any, LowCardinality(String)),
    browser                SimpleAggregateFunction(any, LowCardinality(String)),
    browser_version        SimpleAggregateFunction(any, LowCardinality(String)),
    os                     SimpleAggregateFunction(any, LowCardinality(String)),
    os_version             SimpleAggregateFunction(any, LowCardinality(String))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (merchant_id, site_id, bucket, visit_id, generation)
SETTINGS non_replicated_deduplication_window = 10000;
