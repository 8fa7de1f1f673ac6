-- title: Fraud score distribution
-- description: Decided payments per score band (10 points of the 0-100 score wide) and outcome (last N hours of
--   decisions, or all).
SELECT
    concat(toString(band * 10), '-', toString(band * 10 + 10)) AS score_band,
    decision,
    payments
FROM
(
    SELECT least(intDiv(toUInt32(floor(score * 100)), 10), 9) AS band, decision, count() AS payments
    FROM {database}.fraud_decisions FINAL
    WHERE {hours} = 0 OR decided_at > (SELECT max(decided_at) FROM {database}.fraud_decisions) - {hours} * 3600
    GROUP BY band, decision
)
ORDER BY band, decision
