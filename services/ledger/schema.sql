-- Double-entry ledger. The database itself enforces what the code promises:
--   every transaction balances (debits = credits per currency), checked at commit by a deferred trigger;
--   postings are append-only (no UPDATE or DELETE; mistakes are corrected by a compensating transaction);
--   an account never goes below its floor (checked at commit; posting locks the accounts it touches).
CREATE TABLE IF NOT EXISTS ledger_accounts (
    account      TEXT    PRIMARY KEY,
    normal_side  TEXT    NOT NULL CHECK (normal_side IN ('DEBIT', 'CREDIT')),
    currency     CHAR(3) NOT NULL,
    floor_minor  BIGINT  -- lowest balance allowed (in the account's normal direction); NULL: no floor
);

CREATE TABLE IF NOT EXISTS ledger_transactions (
    transaction_id          UUID        PRIMARY KEY,
    reference               TEXT        NOT NULL,
    reference_type          TEXT        NOT NULL,
    description             TEXT        NOT NULL,
    reverses_transaction_id UUID        UNIQUE REFERENCES ledger_transactions (transaction_id),
    posted_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ledger_lines (
    transaction_id UUID    NOT NULL REFERENCES ledger_transactions (transaction_id),
    line_number    INT     NOT NULL,
    account        TEXT    NOT NULL REFERENCES ledger_accounts (account),
    direction      TEXT    NOT NULL CHECK (direction IN ('DEBIT', 'CREDIT')),
    amount_minor   BIGINT  NOT NULL CHECK (amount_minor > 0),
    currency       CHAR(3) NOT NULL,
    PRIMARY KEY (transaction_id, line_number)
);

CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused; post a compensating transaction instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

CREATE OR REPLACE FUNCTION ledger_check_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced RECORD;
    below RECORD;
BEGIN
    SELECT currency, sum(CASE direction WHEN 'DEBIT' THEN amount_minor ELSE -amount_minor END) AS difference
      INTO unbalanced
      FROM ledger_lines WHERE transaction_id = NEW.transaction_id
     GROUP BY currency
    HAVING sum(CASE direction WHEN 'DEBIT' THEN amount_minor ELSE -amount_minor END) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %: debits - credits = %',
            NEW.transaction_id, unbalanced.currency, unbalanced.difference USING ERRCODE = 'check_violation';
    END IF;
    IF (SELECT count(*) FROM ledger_lines WHERE transaction_id = NEW.transaction_id) < 2 THEN
        RAISE EXCEPTION 'ledger transaction % needs at least two lines', NEW.transaction_id
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT a.account, a.floor_minor,
           sum(CASE WHEN l.direction = a.normal_side THEN l.amount_minor ELSE -l.amount_minor END) AS balance
      INTO below
      FROM ledger_accounts a JOIN ledger_lines l ON l.account = a.account
     WHERE a.floor_minor IS NOT NULL
       AND a.account IN (SELECT account FROM ledger_lines WHERE transaction_id = NEW.transaction_id)
     GROUP BY a.account, a.floor_minor
    HAVING sum(CASE WHEN l.direction = a.normal_side THEN l.amount_minor ELSE -l.amount_minor END) < a.floor_minor
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % would go to % minor units, below its floor of %',
            below.account, below.balance, below.floor_minor USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

DO $$ BEGIN
    CREATE TRIGGER ledger_lines_append_only BEFORE UPDATE OR DELETE ON ledger_lines
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
    CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
    CREATE CONSTRAINT TRIGGER ledger_transaction_balances AFTER INSERT ON ledger_lines
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
