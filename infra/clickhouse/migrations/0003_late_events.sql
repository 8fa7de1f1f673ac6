-- Events that arrived after the job's watermark had passed their window: kept out of the aggregates, recorded here
-- so late traffic stays visible (and measurable, via lateness_ms) instead of silently lost.
CREATE TABLE IF NOT EXISTS {database}.late_events
(
    event_id String,
    event_type String,
    user_id String,
    event_time DateTime('UTC'),
    watermark DateTime('UTC'),
    lateness_ms Int64,
    topic String,
    partition Int32,
    kafka_offset Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_time, event_id);
