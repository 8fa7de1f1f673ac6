CREATE TABLE IF NOT EXISTS contents (
    content_id         UUID        PRIMARY KEY,
    course_id          UUID        NOT NULL,
    instructor_id      UUID        NOT NULL,
    title              TEXT        NOT NULL,
    description        TEXT        NOT NULL,
    tags               TEXT[]      NOT NULL,
    category           TEXT        NOT NULL,
    language           TEXT        NOT NULL,
    level              TEXT        NOT NULL CHECK (level IN ('BEGINNER', 'INTERMEDIATE', 'ADVANCED', 'ALL_LEVELS')),
    duration_seconds   INT         NOT NULL CHECK (duration_seconds > 0),
    lesson_number      INT         NOT NULL CHECK (lesson_number > 0),
    is_free_preview    BOOLEAN     NOT NULL,
    price_minor        BIGINT      NOT NULL CHECK (price_minor >= 0),
    currency           CHAR(3)     NOT NULL,
    revision           INT         NOT NULL DEFAULT 1,
    published_revision INT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The price and currency of the published revision, which orders use (added after the first release).
ALTER TABLE contents ADD COLUMN IF NOT EXISTS published_price_minor BIGINT CHECK (published_price_minor >= 0);
ALTER TABLE contents ADD COLUMN IF NOT EXISTS published_currency CHAR(3);
UPDATE contents SET published_price_minor = price_minor, published_currency = currency
 WHERE published_revision IS NOT NULL AND published_price_minor IS NULL;

-- A deleted content stays as a row (orders refer to its course) but out of every read (added with deletion).
ALTER TABLE contents ADD COLUMN IF NOT EXISTS deleted_at TIMESTAMPTZ;
-- The revision a withdrawal took: publishing that revision again takes the next one (added with withdrawal).
ALTER TABLE contents ADD COLUMN IF NOT EXISTS withdrawn_revision INT;
