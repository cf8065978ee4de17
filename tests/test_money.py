"""Amounts are written with CLDR's rules for the currency and the active language (Babel)."""

from __future__ import annotations

import pytest
from django.utils import translation

from orgbilling.money import format_money, to_major


@pytest.mark.parametrize(
    ("language", "amount", "currency", "expected"),
    [
        ("en-us", 4500, "USD", "$45.00"),
        ("de", 4500, "EUR", "45,00\xa0€"),
        ("ja", 1500, "JPY", "¥1,500"),
        ("en-us", 1500, "JPY", "¥1,500"),
        ("de", 123456, "USD", "1.234,56\xa0$"),
        ("en-us", 1234, "KWD", "KWD1.234"),
    ],
)
def test_amounts_follow_the_currency_and_the_active_language(language, amount, currency, expected):
    with translation.override(language):
        assert format_money(amount, currency) == expected


def test_minor_units_follow_the_currency_precision():
    assert str(to_major(4500, "usd")) == "45.00"
    assert str(to_major(1500, "JPY")) == "1500"


def test_an_unknown_language_falls_back_to_english():
    assert format_money(4500, "USD", language="xx") == "$45.00"
