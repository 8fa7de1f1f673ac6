-- The analytics job updates its aggregates continuously instead of when a watermark closes a window (see
-- docs/analytics.md): a row is the newest value of its key, and ReplacingMergeTree keeps the last one inserted.
--
-- Sessions are rewritten as they grow or merge: each row carries the session's version and a deleted flag (a
-- session absorbed by a merge), and the newest version per (user_id, session_start) wins. The table is rebuilt:
-- ReplacingMergeTree cannot gain a version column in place, and the rows of the old job had no versions. Both rebuilt
-- tables hold only derived rows: replay the topics (a new consumer group) to fill them again.
DROP TABLE IF EXISTS {database}.user_sessions;

CREATE TABLE {database}.user_sessions
(
    user_id String,
    session_start DateTime('UTC'),
    session_end DateTime('UTC'),
    duration_seconds UInt32,
    events UInt32,
    contents_watched UInt32,
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(session_start)
ORDER BY (user_id, session_start);

-- Why an event is in late_events (the job's late rule names itself). Rebuilt, so the file can run twice: 18.16 has
-- no ADD COLUMN IF NOT EXISTS.
DROP TABLE IF EXISTS {database}.late_events;

CREATE TABLE {database}.late_events
(
    event_id String,
    event_type String,
    user_id String,
    event_time DateTime('UTC'),
    watermark DateTime('UTC'),
    lateness_ms Int64,
    topic String,
    partition Int32,
    kafka_offset Int64,
    reason String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_time, event_id);

-- The content dimension: every published revision of a lesson; the highest revision wins whatever the arrival
-- order, so dashboards name lessons and courses by their current titles.
CREATE TABLE IF NOT EXISTS {database}.content_dim
(
    content_id String,
    course_id String,
    title String,
    course_title String,
    revision Int32,
    published_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY content_id;
