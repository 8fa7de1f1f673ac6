"""The ledger's rules hold in the database itself: balance, floors, append-only; also under concurrent postings."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from services.ledger.ledger import LedgerError, Line, Posting, balance, create_ledger, open_account, post, reverse
from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings

WALLETS = [f"liabilities:wallet:{n}" for n in range(6)]
CUSTOMER = str(uuid.uuid4())


@pytest.fixture
def ledger_dsn(private_dsn: str) -> str:
    with psycopg.connect(private_dsn, autocommit=True) as connection:
        create_ledger(connection)
        open_account(connection, "assets:psp_clearing", "DEBIT", "INR")
        for wallet in WALLETS:  # a wallet is what we owe the customer: it may not go below zero
            open_account(connection, wallet, "CREDIT", "INR", floor_minor=0)
    return private_dsn


def _envelope() -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_time": int(time.time() * 1000), "producer": "test",
            "correlation_id": str(uuid.uuid4())}  # fmt: skip


def _transfer(source: str, target: str, amount: int) -> Posting:
    lines = (Line(source, "DEBIT", amount, "INR"), Line(target, "CREDIT", amount, "INR"))
    return Posting(f"transfer-{uuid.uuid4().hex[:6]}", "ADJUSTMENT", "wallet transfer", lines)


def _top_up(wallet: str, amount: int) -> Posting:
    lines = (Line("assets:psp_clearing", "DEBIT", amount, "INR"), Line(wallet, "CREDIT", amount, "INR"))
    return Posting(f"payment-{uuid.uuid4().hex[:6]}", "PAYMENT", "top-up by UPI", lines)


def _post(dsn: str, posting: Posting) -> uuid.UUID:
    with psycopg.connect(dsn) as connection, connection.transaction():
        return post(connection, posting, event_user_id=CUSTOMER, event_envelope=_envelope())


def test_a_balanced_posting_commits_with_its_event(ledger_dsn: str, isolated: Settings) -> None:
    transaction_id = _post(ledger_dsn, _top_up(WALLETS[0], 49_900))
    with psycopg.connect(ledger_dsn) as connection:
        assert balance(connection, WALLETS[0]) == 49_900
        assert balance(connection, "assets:psp_clearing") == 49_900
    OutboxRelay(ledger_dsn, EventPublisher(isolated)).drain()
    with event_consumer(isolated, [isolated.topics.ledger]) as consumer:
        [event] = [record.value for record in consumer.read_to_end()]
    assert str(event["transaction_id"]) == str(transaction_id)
    assert [(line["direction"], line["amount_minor"]) for line in event["lines"]] == [
        ("DEBIT", 49_900),
        ("CREDIT", 49_900),
    ]


def test_the_database_refuses_what_breaks_the_rules(ledger_dsn: str) -> None:
    one_sided = (Line(WALLETS[0], "CREDIT", 5, "INR"), Line(WALLETS[1], "CREDIT", 5, "INR"))
    with pytest.raises(LedgerError, match="does not balance"):
        _post(ledger_dsn, Posting("x", "OTHER", "x", one_sided))
    transaction_id = uuid.uuid4()
    header = "INSERT INTO ledger_transactions VALUES (%s, 'x', 'OTHER', 'x', NULL, now())"
    lines = "INSERT INTO ledger_lines VALUES (%s, 1, %s, 'DEBIT', 100, 'INR'), (%s, 2, %s, 'CREDIT', 99, 'INR')"
    with psycopg.connect(ledger_dsn) as connection:
        # Straight SQL, past the Python checks: the deferred trigger refuses it at commit.
        with pytest.raises(psycopg.errors.CheckViolation, match="does not balance"), connection.transaction():  # noqa: PT012
            connection.execute(header, (transaction_id,))
            connection.execute(lines, (transaction_id, "assets:psp_clearing", transaction_id, WALLETS[0]))
        with pytest.raises(psycopg.errors.CheckViolation, match="below its floor"):
            _post(ledger_dsn, _transfer(WALLETS[1], WALLETS[2], 1))
    existing = _post(ledger_dsn, _top_up(WALLETS[3], 1_000))
    with psycopg.connect(ledger_dsn) as connection:
        for statement in ("UPDATE ledger_lines SET amount_minor = 1 WHERE transaction_id = %s",
                          "DELETE FROM ledger_transactions WHERE transaction_id = %s"):  # fmt: skip
            with pytest.raises(psycopg.errors.RestrictViolation, match="append-only"), connection.transaction():
                connection.execute(statement, (existing,))


def test_concurrent_postings_all_balance_and_no_wallet_goes_below_zero(ledger_dsn: str) -> None:
    for wallet in WALLETS:
        _post(ledger_dsn, _top_up(wallet, 10_000))
    refused: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(25):
            source, target = rng.sample(WALLETS, 2)
            try:
                _post(ledger_dsn, _transfer(target, source, rng.randrange(1, 6_000)))
            except psycopg.errors.CheckViolation as error:
                refused.append(str(error))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert refused, "the load must hit the floor sometimes, or the test proves nothing"
    assert all("below its floor" in message for message in refused)
    with psycopg.connect(ledger_dsn) as connection:
        unbalanced = connection.execute(
            "SELECT transaction_id FROM ledger_lines GROUP BY transaction_id "
            "HAVING sum(CASE direction WHEN 'DEBIT' THEN amount_minor ELSE -amount_minor END) <> 0"
        ).fetchall()
        assert unbalanced == []
        balances = [balance(connection, wallet) for wallet in WALLETS]
    assert min(balances) >= 0
    assert sum(balances) == 6 * 10_000, "transfers move money, they never create or destroy it"


def test_a_reversal_is_a_compensating_posting_never_a_deletion(ledger_dsn: str) -> None:
    original = _post(ledger_dsn, _top_up(WALLETS[4], 2_500))
    with psycopg.connect(ledger_dsn) as connection:
        with connection.transaction():
            reversal = reverse(connection, original, "REFUND", "payment refunded", event_user_id=CUSTOMER,
                               event_envelope=_envelope())  # fmt: skip
        assert balance(connection, WALLETS[4]) == 0
        assert connection.execute("SELECT count(*) FROM ledger_transactions").fetchone() == (2,)
        assert connection.execute(
            "SELECT reverses_transaction_id FROM ledger_transactions WHERE transaction_id = %s", (reversal,)
        ).fetchone() == (original,)
        with pytest.raises(psycopg.errors.UniqueViolation), connection.transaction():
            reverse(connection, original, "REFUND", "twice", event_user_id=CUSTOMER, event_envelope=_envelope())
