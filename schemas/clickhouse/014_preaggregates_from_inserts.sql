-- The dimension rollup (010, 012) and the visit rollup (011) written from each insert into
-- events_enriched by materialized views, instead of by statements that read the inserted rows
-- back (perf/README.md, "Pre-aggregates from the insert itself").
--
-- Before, each Rollup round inserted its enriched rows, then ran an INSERT … SELECT per rollup
-- that found those rows again (by log range) and aggregated them. A view runs its SELECT on the
-- block being inserted, inside the insert statement: no second read of the part, and no
-- statement of its own to parse, plan and schedule (the numbers are in perf/README.md).
--
-- Every writer of events_enriched therefore writes these rollups: Rollup's rounds, reprocessing
-- (under the rebuild's generation, which the rows carry), and anything else that inserts enriched
-- rows. What each view aggregates is exactly what the statements did, per inserted block rather
-- than per round: a round whose insert the engine splits into several blocks writes several rows
-- of one value, which the tables merge (AggregatingMergeTree), as they merge rows of one value
-- from different rounds. People and bots, visit dimensions, revenue and the pageview visitors as
-- described in 010-012.
--
-- Exactly once: a repeated insert with the same insert_deduplication_token (a round retried after
-- a partial failure) is pushed to the views even where events_enriched already holds the block,
-- and each view's block is deduplicated by a token derived from the insert's
-- (deduplicate_blocks_in_dependent_materialized_views, on by default in this ClickHouse and set
-- by the stores with every token). So a retry writes exactly what is missing, in the source table
-- and in each rollup; Rollup's exactly-once tests cover it.
--
-- The minute, hour and day rollups stay statements run after the insert: once the totals count an
-- event, every question about it must answer with it too, and the order in which an insert runs
-- its views is not one a reader can rely on.
--
-- The dimension rollup is three views, one per part of the former statement's UNION ALL (a view
-- over a UNION ALL is triggered by its first table only): pages by a plain GROUP BY; the other
-- event dimensions and the site total by GROUPING SETS; the visit dimensions (people only) by
-- GROUPING SETS, each set named by grouping(). Rows a view writes carry written_012 = 1 (012).
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_dims_pages TO {db}.rollup_dims_day AS
SELECT merchant_id, site_id, 'page' AS dimension, bucket, toString(page) AS value,
    countIf(is_bot = 0 AND name != 'engagement') AS events, countIf(is_bot = 0 AND name = 'pageview') AS pageviews,
    sumIf(visit_start, is_bot = 0) AS visit_starts, countIf(NOT (is_bot = 0)) AS bots, uniqExactStateIf(visitor_id, is_bot = 0) AS visitors, generation,
    uniqExactStateIf(visitor_id, is_bot = 0 AND name = 'pageview') AS pageview_visitors,
    sumMapIf(([toString(currency)], [revenue_micros]), is_bot = 0 AND revenue_micros != 0) AS revenue,
    sumMapIf(([toString(currency)], [toUInt64(1)]), is_bot = 0 AND revenue_micros != 0) AS revenue_events, toUInt8(1) AS written_012
FROM (SELECT merchant_id, site_id, toDate(received_at) AS bucket, generation, is_bot, name, visit_start, visitor_id, currency, revenue_micros,
        pathname AS page
    FROM {db}.events_enriched)
GROUP BY merchant_id, site_id, bucket, generation, page;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_dims_events TO {db}.rollup_dims_day AS
SELECT merchant_id, site_id, multiIf(grouping(d1) = 0, 'hostname', grouping(d2) = 0, 'event', '') AS dimension, bucket,
    multiIf(grouping(d1) = 0, toString(d1), grouping(d2) = 0, toString(d2), '') AS value,
    countIf(is_bot = 0 AND name != 'engagement') AS events, countIf(is_bot = 0 AND name = 'pageview') AS pageviews,
    sumIf(visit_start, is_bot = 0) AS visit_starts, countIf(NOT (is_bot = 0)) AS bots, uniqExactStateIf(visitor_id, is_bot = 0) AS visitors, generation,
    uniqExactStateIf(visitor_id, 0) AS pageview_visitors,
    sumMapIf(([toString(currency)], [revenue_micros]), is_bot = 0 AND revenue_micros != 0) AS revenue,
    sumMapIf(([toString(currency)], [toUInt64(1)]), is_bot = 0 AND revenue_micros != 0) AS revenue_events, toUInt8(1) AS written_012
FROM (SELECT merchant_id, site_id, toDate(received_at) AS bucket, generation, is_bot, name, visit_start, visitor_id, currency, revenue_micros,
        replaceRegexpOne(hostname, '^www\\.', '') AS d1, name AS d2
    FROM {db}.events_enriched)
GROUP BY GROUPING SETS ((merchant_id, site_id, bucket, generation), (merchant_id, site_id, bucket, generation, d1),
    (merchant_id, site_id, bucket, generation, d2));

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_dims_visits TO {db}.rollup_dims_day AS
SELECT merchant_id, site_id,
    multiIf(grouping(d0) = 0, 'source', grouping(d1) = 0, 'channel', grouping(d2) = 0, 'utm_source', grouping(d3) = 0, 'utm_medium',
        grouping(d4) = 0, 'utm_campaign', grouping(d5) = 0, 'country', grouping(d6) = 0, 'region', grouping(d7) = 0, 'city',
        grouping(d8) = 0, 'device', grouping(d9) = 0, 'browser', grouping(d10) = 0, 'os', '') AS dimension, bucket,
    multiIf(grouping(d0) = 0, toString(d0), grouping(d1) = 0, toString(d1), grouping(d2) = 0, toString(d2), grouping(d3) = 0, toString(d3),
        grouping(d4) = 0, toString(d4), grouping(d5) = 0, toString(d5), grouping(d6) = 0, toString(d6), grouping(d7) = 0, toString(d7),
        grouping(d8) = 0, toString(d8), grouping(d9) = 0, toString(d9), grouping(d10) = 0, toString(d10), '') AS value,
    countIf(name != 'engagement') AS events, countIf(name = 'pageview') AS pageviews,
    sum(visit_start) AS visit_starts, toUInt64(0) AS bots, uniqExactState(visitor_id) AS visitors, generation,
    uniqExactStateIf(visitor_id, 0) AS pageview_visitors,
    sumMapIf(([toString(currency)], [revenue_micros]), revenue_micros != 0) AS revenue,
    sumMapIf(([toString(currency)], [toUInt64(1)]), revenue_micros != 0) AS revenue_events, toUInt8(1) AS written_012
FROM (SELECT merchant_id, site_id, toDate(received_at) AS bucket, generation, name, visit_start, visitor_id, currency, revenue_micros,
        visit_source AS d0, visit_channel AS d1, visit_utm_source AS d2, visit_utm_medium AS d3, visit_utm_campaign AS d4,
        visit_country AS d5, visit_region AS d6, visit_city AS d7, visit_device AS d8, visit_browser AS d9, visit_os AS d10
    FROM {db}.events_enriched WHERE is_bot = 0)
GROUP BY GROUPING SETS ((merchant_id, site_id, bucket, generation, d0), (merchant_id, site_id, bucket, generation, d1),
    (merchant_id, site_id, bucket, generation, d2), (merchant_id, site_id, bucket, generation, d3), (merchant_id, site_id, bucket, generation, d4),
    (merchant_id, site_id, bucket, generation, d5), (merchant_id, site_id, bucket, generation, d6), (merchant_id, site_id, bucket, generation, d7),
    (merchant_id, site_id, bucket, generation, d8), (merchant_id, site_id, bucket, generation, d9), (merchant_id, site_id, bucket, generation, d10));

-- The visit rollup: per visit (people only) the block's share of its times, counts and entry/exit
-- page states; rows of the same visit from other blocks merge with it (011). Entry and exit page
-- are ordered by (received_at, log_offset), as the query API's scan orders a visit's pageviews;
-- interactions are events that are neither pageviews nor engagement pings (the contract's
-- bounce). A view writes its columns by name, hence an alias on each.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_visits TO {db}.rollup_visits_day AS
SELECT merchant_id, site_id, toDate(received_at) AS bucket, visit_id, generation,
    any(visitor_id) AS visitor_id, min(received_at) AS first_at, max(received_at) AS last_at,
    countIf(name = 'pageview') AS pageviews, countIf(name NOT IN ('pageview', 'engagement')) AS interactions,
    countIf(name != 'engagement') AS events, sumIf(toUInt64(engagement_ms), name = 'engagement') AS engagement_ms,
    argMinStateIf(pathname, (received_at, log_offset), name = 'pageview') AS entry_page,
    argMaxStateIf(pathname, (received_at, log_offset), name = 'pageview') AS exit_page,
    any(visit_source) AS source, any(visit_channel) AS channel, any(visit_referrer) AS referrer, any(visit_utm_source) AS utm_source,
    any(visit_utm_medium) AS utm_medium, any(visit_utm_campaign) AS utm_campaign, any(visit_utm_content) AS utm_content,
    any(visit_utm_term) AS utm_term, any(visit_country) AS country, any(visit_region) AS region, any(visit_city) AS city,
    any(visit_device) AS device, any(visit_browser) AS browser, any(visit_browser_version) AS browser_version, any(visit_os) AS os,
    any(visit_os_version) AS os_version
FROM {db}.events_enriched WHERE is_bot = 0
GROUP BY merchant_id, site_id, bucket, visit_id, generation;
