-- Bots are kept and countable: the rollups count them per bucket and event name in `bots`, while
-- `events`, `visit_starts`, revenue and `visitors` go on counting people only. Rows built before
-- this column existed (and rebuilt by no reprocessing since) answer 0 bots.
ALTER TABLE {db}.rollup_minute ADD COLUMN IF NOT EXISTS bots SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER revenue_micros;
ALTER TABLE {db}.rollup_hour ADD COLUMN IF NOT EXISTS bots SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER revenue_micros;
ALTER TABLE {db}.rollup_day ADD COLUMN IF NOT EXISTS bots SimpleAggregateFunction(sum, UInt64) DEFAULT 0 AFTER revenue_micros;
