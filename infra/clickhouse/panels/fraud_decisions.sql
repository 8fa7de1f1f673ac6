-- title: Fraud decisions per minute
-- description: Payments the fraud job decided per minute of decision time and outcome (APPROVE, REVIEW, REJECT),
--   with their mean score, newest first (last N hours of decisions, or all); one decision per payment.
SELECT
    toStartOfMinute(decided_at) AS minute,
    decision,
    count() AS decisions,
    round(avg(score), 3) AS mean_score
FROM {database}.fraud_decisions FINAL
WHERE {hours} = 0 OR decided_at > (SELECT max(decided_at) FROM {database}.fraud_decisions) - {hours} * 3600
GROUP BY minute, decision
ORDER BY minute DESC, decision
