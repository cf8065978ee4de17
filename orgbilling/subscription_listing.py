"""The gated read's subscription list, from a statement built once per process.

``GET /api/subscription`` lists an organization's subscriptions with their
organization and its billing profile joined (the notices read them). Django
compiles a queryset's SQL anew on every execution, and for that three-table
``select_related`` the compilation cost more than the query itself: a third of
the whole request, profiled (``python -m bench.profile``). Here the statement is
built once per database from the models' own concrete fields (a field added
later is listed too), and each row becomes model instances through
``Model.from_db`` with the converters the ORM would apply, the organization and
its profile cached on the subscription exactly as ``select_related`` caches them.
``tests/test_subscription_listing.py`` checks it against the ORM, field by field.

On PostgreSQL, where the project lets psycopg prepare statements
(``"prepare_threshold"`` in the database's ``OPTIONS``, e.g.
``DATABASE_URL=postgres://...?prepare_threshold=5``), the statement runs on a
server-binding cursor, so each connection prepares it once and PostgreSQL
stops planning it: measured, 0.34 ms a query with Django's client-side binding,
0.08 ms prepared (a bare one-row lookup: 0.04 ms). Unset, as Django leaves it
for connection poolers in transaction mode, it runs like any other query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.signals import setting_changed
from django.db import connections, router
from django.db.models import Model
from django.dispatch import receiver

from .compiled_queries import preparing_cursor
from .models import BillingProfile, Organization, Subscription


@dataclass(frozen=True)
class _Part:
    """One model's columns in the row: where they are and how to read them."""

    model: type[Model]
    start: int
    stop: int
    names: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (index in the part, converters, column expression)

    def build(self, using: str, row: tuple, connection: Any) -> Model:
        values = list(row[self.start : self.stop])
        for index, converters, expression in self.converters:
            for converter in converters:
                values[index] = converter(values[index], expression, connection)
        return self.model.from_db(using, self.names, values)


@dataclass(frozen=True)
class _Statement:
    sql: str
    subscription: _Part
    organization: _Part
    profile: _Part


_statements: dict[str, _Statement] = {}
_JOINED = ((Subscription, "s"), (Organization, "o"), (BillingProfile, "p"))


def _statement(using: str) -> _Statement:
    """The listing's SQL and row layout for this database, built on first use."""
    statement = _statements.get(using)
    if statement is not None:
        return statement
    connection = connections[using]
    quote = connection.ops.quote_name
    columns: list[str] = []
    parts = []
    for model, alias in _JOINED:
        start, converters = len(columns), []
        for index, field in enumerate(model._meta.concrete_fields):
            columns.append(f"{alias}.{quote(field.column)}")
            column = field.get_col(alias)
            found = tuple(connection.ops.get_db_converters(column) + field.get_db_converters(connection))
            if found:
                converters.append((index, found, column))
        names = tuple(field.attname for field in model._meta.concrete_fields)
        parts.append(_Part(model, start, len(columns), names, tuple(converters)))

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    def column(model: type[Model], name: str) -> str:
        return quote(model._meta.get_field(name).column)

    sql = (
        f"SELECT {', '.join(columns)} FROM {table(Subscription)} s"
        f" INNER JOIN {table(Organization)} o"
        f" ON s.{column(Subscription, 'organization')} = o.{column(Organization, 'id')}"
        f" LEFT OUTER JOIN {table(BillingProfile)} p"
        f" ON p.{column(BillingProfile, 'organization')} = o.{column(Organization, 'id')}"
        f" WHERE s.{column(Subscription, 'organization')} = %s"
        f" ORDER BY s.{column(Subscription, 'created_at')} DESC"
    )
    statement = _statements[using] = _Statement(sql, *parts)
    return statement


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting == "DATABASES":
        _statements.clear()


def listed_with_profiles(organization_id: str) -> list[Subscription]:
    """Every subscription of the organization, newest first, its organization and billing profile joined: one query.

    The same rows as ``notices.with_profiles(checkout.listed_subscriptions(organization_id))``.
    """
    using = router.db_for_read(Subscription)
    statement, connection = _statement(using), connections[using]
    with preparing_cursor(connection) as cursor:
        cursor.execute(statement.sql, [organization_id])
        rows = cursor.fetchall()
    profile_key = statement.profile.start + BillingProfile._meta.concrete_fields.index(BillingProfile._meta.pk)
    listed = []
    for row in rows:
        subscription = statement.subscription.build(using, row, connection)
        organization = statement.organization.build(using, row, connection)
        profile = None if row[profile_key] is None else statement.profile.build(using, row, connection)
        Subscription.organization.field.set_cached_value(subscription, organization)
        Organization.billing_profile.related.set_cached_value(organization, profile)
        if profile is not None:
            BillingProfile.organization.field.set_cached_value(profile, organization)
        listed.append(subscription)
    return listed
