-- title: Registrations per minute
-- description: New user registrations per minute, newest first (last N hours of data, or all).
SELECT
    window_start,
    registrations
FROM {database}.registrations_minute FINAL
WHERE {hours} = 0
    OR window_start > (SELECT max(window_start) FROM {database}.registrations_minute) - {hours} * 3600
ORDER BY window_start DESC
