-- title: Revenue by course
-- description: Captured revenue and payments per course (named by its title) and currency, highest first (last N
--   hours of data, or all). revenue_minor is exact integer minor units; revenue is the same amount in major units, built from
--   integer division and remainder so it is exact too.
SELECT
    if(course_title = '', course_id, course_title) AS course,
    course_id,
    currency,
    payments,
    revenue_minor,
    concat(
        if(revenue_minor < 0, '-', ''),
        toString(intDiv(abs(revenue_minor), intExp10(minor_digits))),
        if(minor_digits = 0, '',
            concat('.', substring(toString(intExp10(minor_digits) + abs(revenue_minor) % intExp10(minor_digits)), 2)))
    ) AS revenue
FROM
(
    SELECT
        course_id,
        currency,
        sum(payments) AS payments,
        sum(revenue_minor) AS revenue_minor,
        -- ISO 4217 minor units: most currencies have 2 digits, these have 0 or 3.
        transform(currency,
            ['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF',
             'XOF', 'XPF', 'BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND'],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3],
            2) AS minor_digits
    FROM {database}.revenue_minute FINAL
    WHERE {hours} = 0 OR window_start > (SELECT max(window_start) FROM {database}.revenue_minute) - {hours} * 3600
    GROUP BY course_id, currency
) AS revenue
ANY LEFT JOIN
(
    -- A course's title, from the content dimension of its lessons.
    SELECT course_id, anyIf(course_title, course_title != '') AS course_title
    FROM {database}.content_dim FINAL
    GROUP BY course_id
) AS courses USING course_id
ORDER BY revenue_minor DESC, course_id, currency
