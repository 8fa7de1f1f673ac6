-- The database and the raw event archive: every event the analytics job reads, envelope fields as columns and the
-- rest as JSON text (read it with visitParamExtract*, which 18.16 has; JSONExtract* it has not).
-- ReplacingMergeTree on the full event key: a replay after a restore writes the same rows again, FINAL hides that.
CREATE DATABASE IF NOT EXISTS {database};

CREATE TABLE IF NOT EXISTS {database}.raw_events
(
    event_id String,
    event_type String,
    event_time DateTime('UTC'),
    event_time_ms Int64,
    user_id String,
    correlation_id String,
    producer String,
    topic String,
    partition Int32,
    kafka_offset Int64,
    payload String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (user_id, event_type, event_time, event_id);
