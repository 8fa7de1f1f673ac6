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
    status       TEXT        NOT NULL CHECK (status IN ('INITIATED', 'APPROVED', 'REJECTED', 'FAILED')),
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
