-- title: Late events
-- description: Events older than their partition's newest event by more than the allowed out-of-orderness, kept
--   out of the aggregates, per event type (last N hours of data, or all): how many, by how much (milliseconds),
--   and the event time they span.
SELECT
    event_type,
    count() AS late_events,
    max(lateness_ms) AS max_lateness_ms,
    intDiv(sum(lateness_ms), toInt64(count())) AS avg_lateness_ms,
    min(event_time) AS first_event_time,
    max(event_time) AS last_event_time
FROM {database}.late_events FINAL
WHERE {hours} = 0 OR event_time > (SELECT max(event_time) FROM {database}.late_events) - {hours} * 3600
GROUP BY event_type
ORDER BY late_events DESC, event_type
