-- title: Content engagement
-- description: Per lesson over the last N hours of data (or all), named by its current title and course:
--   views, distinct viewers, watch time and completion rate (completed views / views). Distinct viewers are
--   counted from raw_events, because per-minute distinct counts cannot be added across minutes.
SELECT
    if(title = '', content_id, title) AS lesson,
    if(course_title = '', course_id, course_title) AS course,
    content_id,
    course_id,
    views,
    unique_viewers,
    watch_seconds,
    completed_views,
    if(views = 0, 0, round(completed_views / views, 4)) AS completion_rate
FROM
(
    -- 18.16 takes one JOIN per SELECT: the names are joined one level up.
    SELECT content_id, course_id, views, unique_viewers, watch_seconds, completed_views
    FROM
    (
        SELECT
            content_id,
            course_id,
            sum(views) AS views,
            sum(watch_seconds) AS watch_seconds,
            sum(completed_views) AS completed_views
        FROM {database}.content_minute FINAL
        WHERE {hours} = 0 OR window_start > (SELECT max(window_start) FROM {database}.content_minute) - {hours} * 3600
        GROUP BY content_id, course_id
    ) AS totals
    ANY LEFT JOIN
    (
        -- No FINAL here: a replayed duplicate cannot change a distinct count, and FINAL on the raw archive is costly.
        -- A regex, not visitParamExtractString: that one finds nothing when the JSON has a space after the colon, as
        -- Python's json.dumps writes by default.
        SELECT
            extract(payload, '"content_id" *: *"([^"]*)"') AS content_id,
            uniqExact(user_id) AS unique_viewers
        FROM {database}.raw_events
        WHERE event_type = 'clickstream.content_viewed'
            AND ({hours} = 0 OR toStartOfMinute(event_time)
                > (SELECT max(window_start) FROM {database}.content_minute) - {hours} * 3600)
        GROUP BY content_id
    ) AS viewers USING content_id
) AS engagement
ANY LEFT JOIN
(
    -- The content dimension: the newest published revision of each lesson.
    SELECT content_id, title, course_title FROM {database}.content_dim FINAL
) AS names USING content_id
ORDER BY views DESC, content_id, course_id
