-- Manhattan schema, version 1. Portable from ClickHouse 18.16 to current
-- releases: no LowCardinality, DateTime64, SimpleAggregateFunction, TTL or
-- lightweight DELETE. {db} is the (validated, quoted) database name.
-- Every statement is idempotent (IF NOT EXISTS), so a migration interrupted
-- half way can simply run again.

-- Every event as received. Replays of a Kafka record collapse on merge
-- (ReplacingMergeTree keyed by partition, offset); ts is Unix microseconds,
-- time the same instant in seconds, for ad-hoc SQL.
CREATE TABLE IF NOT EXISTS {db}.events (
    partition Int32,
    offset Int64,
    type String,
    ts Int64,
    time DateTime DEFAULT toDateTime(intDiv(ts, 1000000)),
    vid String,
    site_id Int64,
    ip String,
    method String,
    url String,
    user_agent String,
    referer String,
    name String,
    value String,
    value_type String,
    value_format String,
    test String,
    selected String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (partition, offset);

-- Every count and value delta, plus the telescoping per-partition offset
-- rows (kind 'offset'). Not partitioned: one INSERT is one part, so a
-- flush's deltas and its offset mark land together. value is exact
-- (Decimal128, 10 fractional digits). Reads always sum() ... GROUP BY.
-- Key order follows the reads: kind and rollup are always given, then goal,
-- test, population; bucket and site (optional filters) last, so a goal
-- count narrows to one granule whether or not a site is given. Small
-- granules: a count reads ~1k rows, not 8k (10M events give ~330k rows).
CREATE TABLE IF NOT EXISTS {db}.counters (
    kind String,
    site Int64,
    goal String,
    test String,
    population String,
    rollup String,
    bucket String,
    partition Int32,
    count Int64,
    value Decimal(38, 10)
) ENGINE = SummingMergeTree((count, value))
ORDER BY (kind, rollup, goal, test, population, bucket, site, partition)
SETTINGS index_granularity = 1024;

-- Serialized visitor states; version = the offset each is valid up to.
-- Reads take argMax(data, version) GROUP BY vid, never FINAL. The rows with
-- vid '\0partition:<p>' are the partitions' sentinels (hw_s).
-- Visitor ids are random, so a batch's load touches one granule per id:
-- small granules keep its cost proportional to the ids asked for, not to
-- every visitor ever stored.
CREATE TABLE IF NOT EXISTS {db}.visitor_state (
    vid String,
    version Int64,
    data String
) ENGINE = ReplacingMergeTree(version)
ORDER BY vid
SETTINGS index_granularity = 256;

-- Goal metadata: the first conversion seen (smallest ts) decides type and
-- format. Duplicate rows from replays are harmless (argMin).
CREATE TABLE IF NOT EXISTS {db}.goals (
    name String,
    value_type String,
    value_format String,
    ts Int64
) ENGINE = ReplacingMergeTree()
ORDER BY (name, ts, value_type, value_format);

-- Test metadata, one row per (test, population) per flush; reads take
-- min(first), max(last) and the distinct populations.
CREATE TABLE IF NOT EXISTS {db}.tests (
    name String,
    population String,
    first Int64,
    last Int64
) ENGINE = ReplacingMergeTree()
ORDER BY (name, population, first, last);
