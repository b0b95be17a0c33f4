-- Coverage of the day pre-aggregates on a database upgraded from an older schema
-- (docs/query-performance.md, "Days stored before the pre-aggregates existed").
--
-- rollup_dims_day (010) and rollup_visits_day (011) are written by Rollup for the events it
-- stores from their migration on, and by reprocessing. Events stored before hold no rows there
-- until their site-day is reprocessed, and a plan over such a day would read it as empty. This
-- table lists those site-days: one row per (merchant, site, pre-aggregate table, UTC day,
-- generation) whose enriched events were stored before the table's migration. The query planner
-- answers a range from a pre-aggregate only when none of its days is listed for the day's active
-- generation (else it scans events_enriched, or refuses past the enriched horizon).
--
-- Per site-day and generation rather than one moment per database: reprocessing rebuilds one
-- site-day into a new generation, with every rollup, so activating it ends that day's gap with no
-- bookkeeping of its own, and sites that came after the upgrade never had one. A fresh database
-- has no events when this runs, so it lists nothing: the pre-aggregates answer from the first day.
--
-- "Stored before the migration" is read from the data: a (site, day, generation) with an event
-- received before the migration's applied_at (schema_migrations), unless that generation was
-- activated after it (a rebuild by the version that writes the table). Events are stored by
-- Rollup, which starts after the migrations, so an event stored before was received before;
-- received_at comes from the ingest node's clock, hence 10 minutes of margin for clock skew (a
-- site-day first seen just after the migration is listed needlessly: scanned until reprocessed).
-- The read is one pass over the enriched events older than the migrations (partitions after are
-- skipped), once. Only the first run of this file on a database fills it (it reads what exists then); it may run
-- twice (see SchemaMigrator): the table replaces duplicates, and readers ask whether a row exists.
CREATE TABLE IF NOT EXISTS {db}.preaggregate_gaps
(
    merchant_id    UInt64,
    site_id        UInt64,
    rollup         LowCardinality(String),
    day            Date,
    generation     UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (merchant_id, site_id, rollup, day, generation);

INSERT INTO {db}.preaggregate_gaps (merchant_id, site_id, rollup, day, generation)
SELECT e.merchant_id, e.site_id, m.rollup, e.day, e.generation
FROM
(
    SELECT merchant_id, site_id, toDate(received_at) AS day, generation, min(received_at) AS first_at
    FROM {db}.events_enriched
    WHERE received_at < (SELECT max(applied_at) + INTERVAL 10 MINUTE FROM {db}.schema_migrations WHERE version IN (10, 11))
    GROUP BY merchant_id, site_id, day, generation
) AS e
CROSS JOIN
(
    SELECT if(version = 10, 'rollup_dims_day', 'rollup_visits_day') AS rollup, min(applied_at) AS applied_at
    FROM {db}.schema_migrations WHERE version IN (10, 11) GROUP BY version
) AS m
LEFT JOIN
(
    SELECT merchant_id, site_id, day, generation, max(activated_at) AS activated_at
    FROM {db}.generations GROUP BY merchant_id, site_id, day, generation
) AS g ON e.merchant_id = g.merchant_id AND e.site_id = g.site_id AND e.day = g.day AND e.generation = g.generation
WHERE e.first_at < m.applied_at + INTERVAL 10 MINUTE AND NOT (g.activated_at >= m.applied_at);
