"""Posting to the ledger inside the caller's transaction, with its `ledger.entry_posted` event in the outbox.

The database enforces balance, floors and append-only storage (`schema.sql`); this module checks the same rules
first only to give a precise error before touching the database, and locks the touched accounts (in a fixed order,
so concurrent postings cannot deadlock) so that floor checks see every earlier posting.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import psycopg

from services.outbox.store import enqueue

Direction = Literal["DEBIT", "CREDIT"]
ReferenceType = Literal["PAYMENT", "ORDER", "CHARGEBACK", "REFUND", "ADJUSTMENT", "OTHER"]


# Where a posting's `ledger.entry_posted` event goes inside the posting's transaction: the outbox, or a caller's
# sink that also keeps it in an event stream of its own (a payment's).
EventSink = Callable[[psycopg.Connection[Any], Mapping[str, Any]], object]


class LedgerError(ValueError):
    """A posting that breaks a ledger rule; the message says which."""


@dataclass(frozen=True)
class Line:
    account: str
    direction: Direction
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Posting:
    reference: str
    reference_type: ReferenceType
    description: str
    lines: tuple[Line, ...]


def create_ledger(connection: psycopg.Connection[Any]) -> None:
    connection.execute(resources.files("services.ledger").joinpath("schema.sql").read_text())


def open_account(
    connection: psycopg.Connection[Any], account: str, normal_side: Direction, currency: str,
    floor_minor: int | None = None,
) -> None:  # fmt: skip
    connection.execute(
        "INSERT INTO ledger_accounts (account, normal_side, currency, floor_minor) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (account) DO NOTHING",
        (account, normal_side, currency, floor_minor),
    )


def _check(lines: Sequence[Line]) -> None:
    if len(lines) < 2:
        raise LedgerError("a posting needs at least two lines")
    if bad := [line for line in lines if line.amount_minor <= 0]:
        raise LedgerError(f"line amounts must be positive minor units: {bad[0]}")
    difference: dict[str, int] = defaultdict(int)
    for line in lines:
        difference[line.currency] += line.amount_minor if line.direction == "DEBIT" else -line.amount_minor
    if unbalanced := {currency: d for currency, d in difference.items() if d}:
        raise LedgerError(f"the posting does not balance (debits - credits per currency): {unbalanced}")


def post(
    connection: psycopg.Connection[Any], posting: Posting, *, event_user_id: str, event_envelope: dict[str, Any],
    reverses_transaction_id: uuid.UUID | None = None, emit: EventSink = enqueue,
) -> uuid.UUID:  # fmt: skip
    """Posts in the connection's open transaction; the database re-checks everything at commit.

    `event_envelope` holds the envelope fields of the `ledger.entry_posted` event (event_id, event_time, producer,
    correlation_id); `event_user_id` the customer the posting concerns.
    """
    _check(posting.lines)
    accounts = sorted({line.account for line in posting.lines})
    found = connection.execute(
        "SELECT account FROM ledger_accounts WHERE account = ANY(%s) ORDER BY account FOR UPDATE", (accounts,)
    ).fetchall()
    if missing := set(accounts) - {row[0] for row in found}:
        raise LedgerError(f"unknown accounts: {sorted(missing)}; open them first")
    transaction_id = uuid.uuid4()
    connection.execute(
        "INSERT INTO ledger_transactions (transaction_id, reference, reference_type, description, "
        "reverses_transaction_id) VALUES (%s, %s, %s, %s, %s)",
        (transaction_id, posting.reference, posting.reference_type, posting.description, reverses_transaction_id),
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO ledger_lines (transaction_id, line_number, account, direction, amount_minor, currency) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(transaction_id, number, line.account, line.direction, line.amount_minor, line.currency)
             for number, line in enumerate(posting.lines, start=1)],
        )  # fmt: skip
    emit(connection, {
        **event_envelope, "event_type": "ledger.entry_posted", "user_id": event_user_id,
        "transaction_id": str(transaction_id), "reference": posting.reference,
        "reference_type": posting.reference_type, "description": posting.description,
        "lines": [{"account": line.account, "direction": line.direction, "amount_minor": line.amount_minor,
                   "currency": line.currency} for line in posting.lines],
        "reverses_transaction_id": str(reverses_transaction_id) if reverses_transaction_id else None,
    })  # fmt: skip
    return transaction_id


def reverse(
    connection: psycopg.Connection[Any], transaction_id: uuid.UUID, reference_type: ReferenceType, description: str,
    *, event_user_id: str, event_envelope: dict[str, Any], emit: EventSink = enqueue,
) -> uuid.UUID:  # fmt: skip
    """A compensating transaction: the original's lines with directions swapped. The original stays as it was."""
    original = connection.execute(
        "SELECT reference FROM ledger_transactions WHERE transaction_id = %s", (transaction_id,)
    ).fetchone()
    if original is None:
        raise LedgerError(f"no ledger transaction {transaction_id}")
    lines = connection.execute(
        "SELECT account, direction, amount_minor, currency FROM ledger_lines WHERE transaction_id = %s "
        "ORDER BY line_number",
        (transaction_id,),
    ).fetchall()
    swapped: tuple[Line, ...] = tuple(
        Line(account, "CREDIT" if direction == "DEBIT" else "DEBIT", amount, currency.strip())
        for account, direction, amount, currency in lines
    )
    posting = Posting(original[0], reference_type, description, swapped)
    return post(connection, posting, event_user_id=event_user_id, event_envelope=event_envelope,
                reverses_transaction_id=transaction_id, emit=emit)  # fmt: skip


def balance(connection: psycopg.Connection[Any], account: str) -> int:
    """The account's balance in its normal direction, minor units."""
    row = connection.execute(
        "SELECT coalesce(sum(CASE WHEN l.direction = a.normal_side THEN l.amount_minor ELSE -l.amount_minor END), 0) "
        "FROM ledger_accounts a LEFT JOIN ledger_lines l ON l.account = a.account WHERE a.account = %s",
        (account,),
    ).fetchone()
    return int(row[0]) if row else 0
