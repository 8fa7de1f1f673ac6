-- raw_events' ids as UUID columns, not their 36-character text: 16 bytes each instead of 37, compared as numbers when
-- ClickHouse sorts a part by (user_id, event_type, event_time, event_id). See docs/benchmarks.md, "UUID columns" for
-- what it saves ClickHouse. The decoder sends an event whose envelope ids are not UUIDs to the dead-letter topic, so
-- every id the job writes fits; UUIDs read back as lowercase text.
--
-- A key column cannot change its type in place: the rows are copied into a new table, which then takes the name. The
-- old table stays, as raw_events_before_0006, with every row as it was: drop it once it is no longer needed (a new
-- database's is empty). Rows whose ids are not UUIDs (archived by versions of the job that did not check them) are not
-- copied and stay only there. Stop the analytics job first, or the rows it writes between the copy and the rename
-- land in the old table; leave room on disk for a second copy.
--
-- Run again after a failure, the file drops a partial copy and makes it again. Two cases need a hand, both a server
-- that stopped during or right after the RENAME: if raw_events does not exist (18.16 renames one table after the
-- other), rename raw_events_before_0006 back to raw_events and migrate again; if raw_events already is the copy but
-- the file was not recorded, the RENAME fails because raw_events_before_0006 exists: rename that table out of the
-- way (keep it: it holds the old rows), then migrate again.
DROP TABLE IF EXISTS {database}.raw_events_uuid;

CREATE TABLE {database}.raw_events_uuid
(
    event_id UUID,
    event_type String,
    event_time DateTime('UTC'),
    event_time_ms Int64,
    user_id UUID,
    correlation_id UUID,
    producer String,
    topic String,
    partition Int32,
    kafka_offset Int64,
    payload String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (user_id, event_type, event_time, event_id);

-- toString takes both column types, so the copy also reads a raw_events that already has UUID ids.
INSERT INTO {database}.raw_events_uuid
SELECT toUUID(toString(event_id)), event_type, event_time, event_time_ms, toUUID(toString(user_id)),
       toUUID(toString(correlation_id)), producer, topic, partition, kafka_offset, payload
FROM {database}.raw_events
WHERE match(toString(event_id), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
  AND match(toString(user_id), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
  AND match(toString(correlation_id), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$');

RENAME TABLE {database}.raw_events TO {database}.raw_events_before_0006,
             {database}.raw_events_uuid TO {database}.raw_events;
