"""Amounts as Chargebee sends them (integers in the currency's minor unit) written for people.

Babel carries CLDR's data for every currency and locale: how many decimals a currency has (JPY none,
KWD three), where the symbol goes and which separators the active Django language uses. Writing that by
hand gets ``45,00 €`` and ``¥1,500`` wrong in somebody's language.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, get_currency_precision
from django.utils import translation

# CLDR writes the yen in Japanese as the full-width sign; pages show the ASCII-width one every other locale uses.
_SYMBOL_FIXES = {"\uffe5": "\u00a5"}


@lru_cache(maxsize=64)
def _locale(language: str) -> Locale:
    try:
        return Locale.parse(translation.to_locale(language))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en_US")


def to_major(amount: int, currency: str) -> Decimal:
    """``4500, "USD"`` -> ``Decimal("45.00")``; ``1500, "JPY"`` -> ``Decimal("1500")``."""
    return Decimal(int(amount)).scaleb(-get_currency_precision(currency.upper()))


def format_money(amount: int, currency: str, language: str | None = None) -> str:
    """An amount in minor units in the active Django language (or ``language``): ``$45.00``, ``45,00 €``.

    An unknown currency code is written with its code, as Babel does.
    """
    currency = (currency or "USD").upper()
    text = format_currency(
        to_major(amount, currency), currency, locale=_locale(language or translation.get_language() or "en-us")
    )
    for wide, narrow in _SYMBOL_FIXES.items():
        text = text.replace(wide, narrow)
    return text
