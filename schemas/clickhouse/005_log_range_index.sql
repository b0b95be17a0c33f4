-- Rollup reads back the rows of one log range (its rollup and event_ids statements filter on
-- log_source and log_offset). Without an index that is a scan of the whole day partition per
-- round, so rounds got slower as the day filled. Each round's rows carry a tight offset range
-- (one insert = one part, and merges keep rows of one range together in time order), so a
-- minmax index per granule skips everything else.
ALTER TABLE {db}.events_enriched ADD INDEX IF NOT EXISTS log_offset_range log_offset TYPE minmax GRANULARITY 1;

ALTER TABLE {db}.events_raw ADD INDEX IF NOT EXISTS log_offset_range log_offset TYPE minmax GRANULARITY 1;
