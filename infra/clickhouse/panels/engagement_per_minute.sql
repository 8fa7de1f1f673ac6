-- title: Engagement per minute
-- description: Views, watch time and completed views per minute over all content, newest first (last N
--   hours of data, or all).
SELECT
    window_start,
    sum(views) AS views,
    sum(watch_seconds) AS watch_seconds,
    sum(completed_views) AS completed_views,
    count() AS contents_viewed
FROM {database}.content_minute FINAL
WHERE {hours} = 0 OR window_start > (SELECT max(window_start) FROM {database}.content_minute) - {hours} * 3600
GROUP BY window_start
ORDER BY window_start DESC
