-- The fraud job's decisions, for the dashboard's fraud panels. The job's Kafka sink is at-least-once, so a payment
-- scored again after a restore has a second row with the same decision_id (it derives from the payment): the
-- ReplacingMergeTree keeps the row of highest first_rank (2^62 - decided_at_ms), i.e. the first decision, the one the
-- saga applied. Partitioned by the payment's time, which every copy shares, so copies always merge.
CREATE TABLE IF NOT EXISTS {database}.fraud_decisions
(
    decision_id String,
    payment_id String,
    order_id String,
    user_id String,
    payment_time DateTime('UTC'),
    decided_at DateTime('UTC'),
    decided_at_ms Int64,
    decision String,
    score Float64,
    reasons String,
    model_version String,
    first_rank UInt64
)
ENGINE = ReplacingMergeTree(first_rank)
PARTITION BY toYYYYMM(payment_time)
ORDER BY decision_id;
