CREATE TABLE IF NOT EXISTS users (
    user_id            UUID        PRIMARY KEY,
    email              TEXT        NOT NULL,
    display_name       TEXT        NOT NULL,
    country            CHAR(2)     NOT NULL,
    preferred_language TEXT        NOT NULL,
    marketing_opt_in   BOOLEAN     NOT NULL DEFAULT FALSE,
    password_hash      TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at         TIMESTAMPTZ
);
-- One live account per address, whatever its case; a deleted account frees the address.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_live ON users (lower(email)) WHERE deleted_at IS NULL;
