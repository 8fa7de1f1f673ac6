-- title: Learning sessions
-- description: Per hour of session start, newest first (last N hours of data, or all): sessions,
--   distinct users, and the average duration, events and contents watched per session.
SELECT
    toStartOfHour(session_start) AS hour,
    count() AS sessions,
    uniqExact(user_id) AS users,
    round(avg(duration_seconds), 1) AS avg_duration_s,
    round(avg(events), 2) AS avg_events,
    round(avg(contents_watched), 2) AS avg_contents
FROM {database}.user_sessions FINAL
-- A session absorbed by a later merge is kept as a deleted row.
WHERE deleted = 0
    AND ({hours} = 0 OR session_start > (SELECT max(session_start) FROM {database}.user_sessions) - {hours} * 3600)
GROUP BY hour
ORDER BY hour DESC
