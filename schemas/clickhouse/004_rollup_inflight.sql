-- The log range each Rollup consumer group is storing, per log source (the local log, or one
-- Kafka partition), written before a round's first insert. Whoever reads that source next (the
-- same node after a crash, or another consumer after a Kafka rebalance) finds it here and, if
-- the group's committed offset is still at the range's start, stores exactly that range again
-- with the same insert-deduplication tokens: blocks already stored are skipped, missing ones
-- written. It lives in the store, not on one node's disk, because with Kafka the next reader
-- of a partition may be another machine. The latest range per source (highest from_offset) wins.
CREATE TABLE IF NOT EXISTS {db}.rollup_inflight
(
    consumer_group  String,
    source          String,
    from_offset     Int64,
    next_offset     Int64,
    marked_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(from_offset)
ORDER BY (consumer_group, source);
