CREATE TABLE IF NOT EXISTS orders (
    order_id         UUID        PRIMARY KEY,
    user_id          UUID        NOT NULL,
    course_id        UUID        NOT NULL,
    unit_price_minor BIGINT      NOT NULL CHECK (unit_price_minor >= 0),
    subtotal_minor   BIGINT      NOT NULL CHECK (subtotal_minor >= 0),
    tax_minor        BIGINT      NOT NULL CHECK (tax_minor >= 0),
    total_minor      BIGINT      NOT NULL CHECK (total_minor = subtotal_minor + tax_minor),
    currency         CHAR(3)     NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('CREATED', 'PAID', 'FULFILLED', 'CANCELLED')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS payments (
    payment_id   UUID        PRIMARY KEY,
    order_id     UUID        NOT NULL REFERENCES orders (order_id),
    user_id      UUID        NOT NULL,
    attempt      INT         NOT NULL,
    method       TEXT        NOT NULL CHECK (method IN ('UPI', 'CARD')),
    amount_minor BIGINT      NOT NULL CHECK (amount_minor > 0),
    currency     CHAR(3)     NOT NULL,
    status       TEXT        NOT NULL,
    -- Only the token and the last four digits of a card: never its number, expiry or CVV.
    card_token   TEXT,
    card_last4   CHAR(4),
    vpa          TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (order_id, attempt)
);

-- A repeated request with the same key returns the first answer; the same key with another body is refused.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    user_id         UUID        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    request_hash    TEXT        NOT NULL,
    response_status INT,
    response_body   JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);

CREATE TABLE IF NOT EXISTS enrollments (
    enrollment_id UUID        PRIMARY KEY,
    user_id       UUID        NOT NULL,
    course_id     UUID        NOT NULL,
    order_id      UUID        NOT NULL UNIQUE REFERENCES orders (order_id),
    enrolled_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Which ledger transaction paid an order, so a compensation can reverse exactly that posting.
CREATE TABLE IF NOT EXISTS order_postings (
    order_id       UUID PRIMARY KEY REFERENCES orders (order_id),
    transaction_id UUID NOT NULL
);

-- A payment's events in the order they were recorded: the source its state is rebuilt from. `payments.status` is
-- the projection of this stream, written in the same transaction.
CREATE TABLE IF NOT EXISTS payment_events (
    payment_id  UUID        NOT NULL,
    sequence    INT         NOT NULL CHECK (sequence > 0),
    event_id    UUID        NOT NULL UNIQUE,
    event_type  TEXT        NOT NULL,
    event_time  TIMESTAMPTZ NOT NULL,
    payload     JSONB       NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (payment_id, sequence)
);

CREATE OR REPLACE FUNCTION payment_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment_events is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END $$;

DO $$ BEGIN
    CREATE TRIGGER payment_events_append_only BEFORE UPDATE OR DELETE ON payment_events
        FOR EACH ROW EXECUTE FUNCTION payment_events_append_only();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    CREATE TRIGGER payment_events_no_truncate BEFORE TRUNCATE ON payment_events
        FOR EACH STATEMENT EXECUTE FUNCTION payment_events_append_only();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- A refunded payment (its sale reversed by a compensating posting) is a state of its own; older databases get the
-- wider check once.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'payments'::regclass
                   AND conname = 'payments_status_check' AND pg_get_constraintdef(oid) LIKE '%REFUNDED%') THEN
        ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_status_check;
        ALTER TABLE payments ADD CONSTRAINT payments_status_check
            CHECK (status IN ('INITIATED', 'APPROVED', 'REJECTED', 'FAILED', 'REFUNDED'));
    END IF;
END $$;
