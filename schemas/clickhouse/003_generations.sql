-- Reprocessing: derived rows (enriched events, rollups) carry a generation. A rebuild of one
-- site-day writes a new generation beside the old one, then activates it with one row in
-- `generations`; queries read only the active generation of each (merchant, site, day). So
-- readers see the old numbers or the new ones for a site-day, never a mix, a gap or zero.
-- Generation 0 is what live Rollup wrote before any rebuild of that day; no row needed.
-- The generation joins the sort key so AggregatingMergeTree never merges two generations
-- (ClickHouse allows that only for a column without a default expression; UInt64 starts at 0).

ALTER TABLE {db}.events_enriched ADD COLUMN IF NOT EXISTS generation UInt64 DEFAULT 0;

ALTER TABLE {db}.rollup_minute ADD COLUMN IF NOT EXISTS generation UInt64, MODIFY ORDER BY (merchant_id, site_id, bucket, name, generation);

ALTER TABLE {db}.rollup_hour ADD COLUMN IF NOT EXISTS generation UInt64, MODIFY ORDER BY (merchant_id, site_id, bucket, name, generation);

ALTER TABLE {db}.rollup_day ADD COLUMN IF NOT EXISTS generation UInt64, MODIFY ORDER BY (merchant_id, site_id, bucket, name, generation);

-- The active generation of each site-day: the row with the latest activated_at wins.
CREATE TABLE IF NOT EXISTS {db}.generations
(
    merchant_id    UInt64,
    site_id        UInt64,
    day            Date,
    generation     UInt64,
    logic_version  UInt16,
    events         UInt64,
    activated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(activated_at)
ORDER BY (merchant_id, site_id, day);
