"""Amounts as Chargebee sends them (integers in the currency's minor unit) written for people."""

from __future__ import annotations

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "INR": "₹", "JPY": "¥", "AUD": "A$", "CAD": "C$"}
ZERO_DECIMAL = frozenset({"JPY", "KRW", "CLP", "VND", "ISK", "HUF"})


def format_money(amount: int, currency: str) -> str:
    """``4500, "USD"`` -> ``$45.00``; an unknown currency is written with its code (``CHF 45.00``)."""
    currency = (currency or "USD").upper()
    value = f"{amount:,}" if currency in ZERO_DECIMAL else f"{amount / 100:,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{currency} {value}"
