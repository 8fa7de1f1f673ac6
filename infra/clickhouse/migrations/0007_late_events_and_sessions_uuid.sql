-- The ids of late_events (event_id, user_id) and user_sessions (user_id) as UUID columns, as raw_events' since 0006:
-- the tables join on them without a conversion (a UUID column does not join a String one), and an id is one id
-- whatever case its producer wrote (the job writes UUIDs in lowercase since the same release; so do UUID columns).
--
-- As in 0006, a key column cannot change its type in place: the rows are copied into new tables, which then take the
-- names. The old tables stay, as late_events_before_0007 and user_sessions_before_0007, with every row as it was:
-- drop them once they are no longer needed (a new database's are empty). An empty id (the job wrote one for an event
-- whose writer's schema had no such field) becomes the nil UUID, what the sink writes into a UUID column for a
-- missing id. Rows with any other id that is not a UUID (written by versions of the job that did not check them) are
-- not copied and stay only in the old tables. Stop the analytics job first, or the rows it writes between the copy
-- and the rename land in the old tables.
--
-- Run again after a failure, the file drops the partial copies and makes them again. A server that stopped during
-- the RENAME (18.16 renames one table after the other) leaves some of its four renames done; then, for each of
-- late_events and user_sessions: if the table is missing, rename its *_before_0007 table back to it; if both the
-- table and its *_before_0007 table exist, the table already is the copy: rename the *_before_0007 one out of the way
-- (keep it: it holds the old rows). Then migrate again.
DROP TABLE IF EXISTS {database}.late_events_uuid;

CREATE TABLE {database}.late_events_uuid
(
    event_id UUID,
    event_type String,
    user_id UUID,
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

-- toString takes both column types, so the copy also reads a table that already has UUID ids.
INSERT INTO {database}.late_events_uuid
SELECT toUUID(if(toString(event_id) = '', '00000000-0000-0000-0000-000000000000', toString(event_id))),
       event_type,
       toUUID(if(toString(user_id) = '', '00000000-0000-0000-0000-000000000000', toString(user_id))),
       event_time, watermark, lateness_ms, topic, partition, kafka_offset, reason
FROM {database}.late_events
WHERE (toString(event_id) = ''
       OR match(toString(event_id), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'))
  AND (toString(user_id) = ''
       OR match(toString(user_id), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'));

DROP TABLE IF EXISTS {database}.user_sessions_uuid;

CREATE TABLE {database}.user_sessions_uuid
(
    user_id UUID,
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

INSERT INTO {database}.user_sessions_uuid
SELECT toUUID(if(toString(user_id) = '', '00000000-0000-0000-0000-000000000000', toString(user_id))),
       session_start, session_end, duration_seconds, events, contents_watched, version, deleted
FROM {database}.user_sessions
WHERE toString(user_id) = ''
   OR match(toString(user_id), '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$');

RENAME TABLE {database}.late_events TO {database}.late_events_before_0007,
             {database}.late_events_uuid TO {database}.late_events,
             {database}.user_sessions TO {database}.user_sessions_before_0007,
             {database}.user_sessions_uuid TO {database}.user_sessions;
