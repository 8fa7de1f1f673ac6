-- title: Fraud reasons
-- description: The inputs that raised fraud scores most (each decision names its largest feature contributions), by
--   how many REVIEW or REJECT decisions name them and their mean contribution (last N hours of decisions, or all).
SELECT
    substring(reason, 1, position(reason, '=') - 1) AS input,
    count() AS decisions,
    round(avg(toFloat64OrZero(substring(reason, position(reason, '(+') + 2, position(reason, ')') - position(reason, '(+') - 2))), 3)
        AS mean_contribution
FROM
(
    SELECT arrayJoin(splitByString('; ', reasons)) AS reason
    FROM {database}.fraud_decisions FINAL
    WHERE decision != 'APPROVE'
      AND ({hours} = 0 OR decided_at > (SELECT max(decided_at) FROM {database}.fraud_decisions) - {hours} * 3600)
)
WHERE reason != ''
GROUP BY input
ORDER BY decisions DESC, input
