-- title: Purchase funnel
-- description: Per hour, newest first (last N hours of data, or all): distinct users who viewed content,
--   ordered, paid and enrolled, with the conversion ratio of each step and overall (enrolled / viewed).
SELECT
    window_start AS hour,
    viewed,
    ordered,
    paid,
    enrolled,
    if(viewed = 0, 0, round(ordered / viewed, 4)) AS view_to_order,
    if(ordered = 0, 0, round(paid / ordered, 4)) AS order_to_pay,
    if(paid = 0, 0, round(enrolled / paid, 4)) AS pay_to_enroll,
    if(viewed = 0, 0, round(enrolled / viewed, 4)) AS view_to_enroll
FROM {database}.funnel_hour FINAL
WHERE {hours} = 0 OR window_start > (SELECT max(window_start) FROM {database}.funnel_hour) - {hours} * 3600
ORDER BY window_start DESC
