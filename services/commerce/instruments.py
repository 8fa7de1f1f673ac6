"""Payment instrument checks: UPI virtual payment addresses and card numbers (Luhn), and card tokenization."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

VPA = re.compile(r"^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$")


def vpa_problem(vpa: str) -> str | None:
    if not VPA.match(vpa):
        return "is not a UPI address like name@bank (2-256 letters, digits, '.', '-' or '_', then '@' and the handle)"
    return None


def luhn_valid(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


CARD_NUMBER = re.compile(r"[0-9]{12,19}")
CVV = re.compile(r"[0-9]{3,4}")


def card_problem(number: str) -> str | None:
    # ASCII digits only: str.isdigit() also accepts '²' or Devanagari digits, which no card network issues.
    if not CARD_NUMBER.fullmatch(number):
        return "must be 12 to 19 digits (0-9)"
    if not luhn_valid(number):
        return "is not a valid card number (checksum)"
    return None


def card_network(number: str) -> str:
    if number.startswith("4"):
        return "VISA"
    if number[:2] in {"34", "37"}:
        return "AMEX"
    if number[:2] in {"36", "38"}:
        return "DINERS"
    if 51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720:
        return "MASTERCARD"
    if number[:2] in {"60", "65", "81", "82"}:
        return "RUPAY"
    return "OTHER"


@dataclass(frozen=True)
class CardToken:
    token: str
    last4: str
    bin: str
    network: str


def tokenize(number: str, secret: bytes) -> CardToken:
    """A keyed hash stands in for the card vault: the same card gets the same token, the number cannot be recovered."""
    digest = hmac.new(secret, number.encode(), hashlib.sha256).hexdigest()
    return CardToken(f"tok_{digest[:32]}", number[-4:], number[:6], card_network(number))
