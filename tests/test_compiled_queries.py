"""Querysets built once (orgbilling.compiled_queries): the ORM's SQL, the ORM's rows, a fraction of its Python."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.db.models.signals import post_save
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orgbilling import compiled_queries, subscription_sync
from orgbilling.compiled_queries import CompiledQuery
from orgbilling.models import Organization, Subscription, WebhookDelivery

pytestmark = pytest.mark.django_db


def fields(row: object) -> dict:
    return {field.attname: getattr(row, field.attname) for field in type(row)._meta.concrete_fields}


@pytest.fixture
def rows() -> tuple[Organization, Subscription]:
    organization = Organization.objects.create(id="org_1", display_name="Acme", chargebee_customer_id="cus_1")
    Organization.objects.create(id="org_2", display_name="Other", chargebee_customer_id="cus_2")
    subscription = Subscription.objects.create(
        id="sub_1",
        organization=organization,
        chargebee_subscription_id="sub_1",
        status="active",
        seats=3,
        items=[{"item_price_id": "team-plan-USD-monthly", "quantity": 3}],  # a JSON column: converted on read
        current_period_end=datetime(2027, 1, 1, tzinfo=UTC),
        resource_version=7,
    )
    return organization, subscription


@pytest.mark.parametrize("lock", [True, False])
def test_the_write_paths_reads_give_the_orms_statement_and_rows(rows, lock):
    organization, subscription = rows
    orm_organizations = subscription_sync._organizations(lock).filter(chargebee_customer_id="cus_1")
    orm_subscriptions = subscription_sync._subscriptions(lock).filter(
        subscription_sync._linkable("sub_1", "org_1"), pk="sub_1"
    )
    with transaction.atomic():
        for compiled, values, orm in [
            (subscription_sync._BY_CUSTOMER[lock], ("cus_1",), orm_organizations),
            (subscription_sync._BY_ID[(lock, True)], ("sub_1", "org_1"), orm_subscriptions.order_by("-created_at")),
        ]:
            with CaptureQueriesContext(connection) as ours:
                found = compiled.first(*values)
            with CaptureQueriesContext(connection) as theirs:
                expected = orm.first()
            assert [query["sql"] for query in ours] == [query["sql"] for query in theirs]
            assert type(found) is type(expected) and fields(found) == fields(expected)
            assert not found._state.adding and found._state.db == "default"
    assert fields(found)["items"] == subscription.items and found.current_period_end == subscription.current_period_end


def test_a_row_of_another_organization_or_none_at_all_is_not_found(rows):
    with transaction.atomic():
        assert subscription_sync._BY_ID[(True, True)].first("sub_1", "org_2") is None
        assert subscription_sync._BY_ID[(True, False)].first("sub_1").pk == "sub_1"
        assert subscription_sync._BY_CUSTOMER[True].first("cus_9") is None


def test_a_value_that_is_not_a_string_gets_the_orms_meaning(rows):
    Organization.objects.create(id="org_3", chargebee_customer_id=None)
    # The ORM reads "= None" as IS NULL; SQL's "= NULL" would find nothing.
    assert subscription_sync._BY_CUSTOMER[False].first(None).pk == "org_3"


def test_a_build_that_changes_its_value_is_refused_at_the_first_call(rows):
    lowered = CompiledQuery(lambda name: Organization.objects.filter(display_name__icontains=name))
    with pytest.raises(ImproperlyConfigured):
        lowered.first("acme")


@pytest.mark.skipif("not connection.features.has_select_for_update", reason="locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_locking_read_outside_a_transaction_is_refused_as_the_orm_refuses_it(rows):
    with transaction.atomic():
        subscription_sync._BY_CUSTOMER[True].first("cus_1")  # built inside one
    with pytest.raises(TransactionManagementError):
        subscription_sync._BY_CUSTOMER[True].first("cus_1")


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="psycopg's prepared statements")
def test_where_statements_may_be_prepared_a_compiled_query_is_prepared_once(rows, prepared_statements):
    before = prepared_statements("%FOR NO KEY%")
    with transaction.atomic():
        found = [subscription_sync._BY_CUSTOMER[True].first(customer) for customer in ("cus_1", "cus_2")]
    assert [organization.pk for organization in found] == ["org_1", "org_2"]
    assert prepared_statements("%FOR NO KEY%") == before + 1  # prepared by the first call, reused by the second


def test_a_read_with_its_organization_gives_the_orms_statement_and_fills_the_organization_in(rows):
    organization, _ = rows
    orm = (
        Subscription.objects.locked(of=("organization", "self"))
        .select_related("organization")
        .filter(subscription_sync._linkable("sub_1"), Q(organization__chargebee_customer_id="cus_1"), pk="sub_1")
    )
    with transaction.atomic():
        with CaptureQueriesContext(connection) as ours:
            found = subscription_sync._WITH_ORGANIZATION.first("cus_1", "sub_1")
            cached = found.organization  # no query of its own
        with CaptureQueriesContext(connection) as theirs:
            expected = orm.first()
        assert [query["sql"] for query in ours] == [query["sql"] for query in theirs]
        assert fields(found) == fields(expected) and fields(cached) == fields(expected.organization)
        assert cached._state.db == "default" and not cached._state.adding
        # Another customer's organization, or a subscription linked elsewhere, is not this row.
        assert subscription_sync._WITH_ORGANIZATION.first("cus_2", "sub_1") is None
        Subscription.objects.filter(pk="sub_1").update(chargebee_subscription_id="sub_9")
        assert subscription_sync._WITH_ORGANIZATION.first("cus_1", "sub_1") is None


def test_a_build_that_follows_relations_two_deep_is_refused(rows):
    from orgbilling.models import Invoice

    deep = CompiledQuery(lambda pk: Invoice.objects.select_related("subscription__organization").filter(pk=pk))
    with pytest.raises(ImproperlyConfigured):
        deep.first("inv_1")


def test_save_columns_runs_the_orms_update_and_leaves_the_row_as_its_save_does(rows):
    _, subscription = rows
    twin = Subscription.objects.create(id="sub_2", organization_id="org_1", status="active", seats=3)
    for status, ends in [("cancelled", None), ("active", datetime(2027, 2, 1, tzinfo=UTC))]:  # NULL, then a value
        captured = []
        for row, save in [
            (subscription, lambda row, names: row.save(update_fields=names)),
            (twin, compiled_queries.save_columns),
        ]:
            row.status, row.current_period_end, row.items = status, ends, [{"item_price_id": status}]
            before = timezone.now()
            with CaptureQueriesContext(connection) as queries:
                save(row, ["items", "status", "current_period_end", "updated_at"])
            assert row.updated_at >= before  # auto_now, as the ORM sets it
            captured.append([re.sub(r"'[^']*'", "?", query["sql"]) for query in queries])  # the values differ
        assert captured[0] == captured[1]
        stored = [fields(Subscription.objects.get(pk=pk)) for pk in ("sub_1", "sub_2")]
        assert [[row[name] for name in ("status", "current_period_end", "items")] for row in stored] == [
            [status, ends, [{"item_price_id": status}]]
        ] * 2
        assert stored[1]["updated_at"] == twin.updated_at


def test_save_columns_of_a_row_that_is_gone_fails_as_the_orms_save(rows):
    _, subscription = rows
    Subscription.objects.filter(pk="sub_1").delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        compiled_queries.save_columns(subscription, ["status"])


def test_a_model_whose_save_signals_have_a_receiver_is_saved_by_the_orm(rows):
    _, subscription = rows
    heard = []

    def hear(sender, instance, **kwargs):
        heard.append((instance.pk, kwargs.get("created")))

    post_save.connect(hear, sender=Subscription)
    try:
        compiled_queries.save_columns(subscription, ["status"])
        delivery = WebhookDelivery(vendor="chargebee", event_id="ev_1", event_type="subscription_changed", body="{}")
        post_save.connect(hear, sender=WebhookDelivery)
        compiled_queries.insert(delivery)
    finally:
        post_save.disconnect(hear, sender=Subscription)
        post_save.disconnect(hear, sender=WebhookDelivery)
    assert heard == [("sub_1", False), (delivery.pk, True)]


def test_insert_runs_the_orms_insert_and_gives_the_row_its_id(rows):
    made = []
    for number, save in [
        (1, lambda row: row.save(force_insert=True)),
        (2, compiled_queries.insert),
        (3, compiled_queries.insert),
    ]:
        delivery = WebhookDelivery(vendor="chargebee", event_id=f"ev_{number}", event_type="x", body="{}", attempts=1)
        with CaptureQueriesContext(connection) as queries:
            save(delivery)
        made.append((delivery, [query["sql"] for query in queries]))
    (orm, orm_sql), *ours = made
    for delivery, sql in ours:
        assert [re.sub(r"'[^']*'", "?", statement) for statement in sql] == [  # the values differ
            re.sub(r"'[^']*'", "?", statement) for statement in orm_sql
        ]
        stored = WebhookDelivery.objects.get(event_id=delivery.event_id)
        assert delivery.pk == stored.pk and not delivery._state.adding and delivery._state.db == "default"
        assert (stored.status, stored.attempts, stored.received_at) == ("received", 1, delivery.received_at)


def _delivery(event_id: str = "ev_held") -> WebhookDelivery:
    return WebhookDelivery(vendor="chargebee", event_id=event_id, event_type="subscription_changed", body="{}")


def test_a_held_update_runs_with_the_next_insert_in_one_statement_on_postgresql(rows):
    _, subscription = rows
    subscription.status, delivery = "cancelled", _delivery()
    with CaptureQueriesContext(connection) as queries, transaction.atomic(), compiled_queries.holding_update():
        compiled_queries.save_columns(subscription, ["status"])
        compiled_queries.insert(delivery)
    written = [query["sql"] for query in queries if query["sql"].split()[0] in ("WITH", "UPDATE", "INSERT")]
    if connection.vendor == "postgresql":
        [joined] = written  # one round trip for both
        assert joined.startswith('WITH held AS (UPDATE "orgbilling_subscription"')
    else:
        assert [sql.split()[0] for sql in written] == ["UPDATE", "INSERT"]
    assert Subscription.objects.get(pk="sub_1").status == "cancelled"
    assert WebhookDelivery.objects.get(event_id="ev_held").pk == delivery.pk and not delivery._state.adding


def test_any_other_statement_runs_the_held_update_first(rows):
    """Nothing inside the block can read the row as it was before the write."""
    _, subscription = rows
    subscription.status = "cancelled"
    with transaction.atomic(), compiled_queries.holding_update():
        compiled_queries.save_columns(subscription, ["status"])
        assert Subscription.objects.get(pk="sub_1").status == "cancelled"
        with CaptureQueriesContext(connection) as queries:
            compiled_queries.insert(_delivery())
    assert [query["sql"].split()[0] for query in queries] == ["INSERT"]  # it ran already: the insert is alone


def test_a_held_update_left_over_runs_before_the_commit_and_a_rollback_drops_it(rows):
    _, subscription = rows
    subscription.status = "cancelled"
    with transaction.atomic(), compiled_queries.holding_update():
        compiled_queries.save_columns(subscription, ["status"])
    assert Subscription.objects.get(pk="sub_1").status == "cancelled"
    subscription.status = "active"
    with CaptureQueriesContext(connection) as queries:
        with transaction.atomic(), compiled_queries.holding_update():
            compiled_queries.save_columns(subscription, ["status"])
            transaction.set_rollback(True)
    assert Subscription.objects.get(pk="sub_1").status == "cancelled"
    if connection.vendor == "postgresql":
        assert not [query for query in queries if query["sql"].startswith("UPDATE")]  # never sent


def test_a_held_update_of_a_row_that_is_gone_fails_with_its_insert_and_writes_nothing(rows):
    _, subscription = rows
    Subscription.objects.filter(pk="sub_1").delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        with transaction.atomic(), compiled_queries.holding_update():
            compiled_queries.save_columns(subscription, ["status"])
            compiled_queries.insert(_delivery())
    assert not WebhookDelivery.objects.exists()
