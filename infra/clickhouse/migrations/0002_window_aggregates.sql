-- Windowed results of the analytics job. Each row is the final value of its window key: a replayed or updated window
-- replaces the earlier row (ReplacingMergeTree keeps the last inserted per ORDER BY key), so readers use FINAL.
-- Money is Int64 minor units (paise for INR): floats cannot hold exact amounts.
CREATE TABLE IF NOT EXISTS {database}.content_minute
(
    window_start DateTime('UTC'),
    content_id String,
    course_id String,
    views UInt64,
    unique_viewers UInt64,
    watch_seconds UInt64,
    completed_views UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, content_id);

CREATE TABLE IF NOT EXISTS {database}.user_sessions
(
    user_id String,
    session_start DateTime('UTC'),
    session_end DateTime('UTC'),
    duration_seconds UInt32,
    events UInt32,
    contents_watched UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(session_start)
ORDER BY (user_id, session_start);

CREATE TABLE IF NOT EXISTS {database}.revenue_minute
(
    window_start DateTime('UTC'),
    course_id String,
    payment_method String,
    currency String,
    revenue_minor Int64,
    payments UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, course_id, payment_method, currency);

CREATE TABLE IF NOT EXISTS {database}.funnel_hour
(
    window_start DateTime('UTC'),
    viewed UInt64,
    ordered UInt64,
    paid UInt64,
    enrolled UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY window_start;

CREATE TABLE IF NOT EXISTS {database}.registrations_minute
(
    window_start DateTime('UTC'),
    registrations UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY window_start;
