"""The item price mirror: apply_item_price, the item_price_* webhooks and the prices sync pass."""

from __future__ import annotations

import copy

import pytest

from orgbilling import signals
from orgbilling.chargebee_snapshot import InvalidSnapshot
from orgbilling.models import ItemPrice, WebhookDelivery
from orgbilling.prices import apply_item_price, sync_item_prices
from tests.chargebee_payloads import post_event
from tests.conftest import sample

pytestmark = pytest.mark.django_db

VERSION = 1764633600000


def price(fixture: str = "per_unit_monthly", *, version: int = 0, **fields) -> dict:
    """A copy of a published-schema item price; ``version`` n gives resource_version VERSION + n."""
    data = copy.deepcopy(sample(f"chargebee/item_prices/{fixture}.json"))
    data.update(resource_version=VERSION + version, **fields)
    return data


def event(event_type: str, item_price: dict, event_id: str = "ev_price_1") -> dict:
    body = copy.deepcopy(sample("chargebee/item_prices/item_price_updated_event.json"))
    body.update(id=event_id, event_type=event_type)
    body["content"]["item_price"] = item_price
    return body


@pytest.fixture
def changed():
    received = []

    def receive(sender, item_price, created, **kwargs):
        received.append((item_price.pk, item_price.status, created))

    signals.item_price_changed.connect(receive, dispatch_uid="test-item-price-changed")
    yield received
    signals.item_price_changed.disconnect(dispatch_uid="test-item-price-changed")


@pytest.fixture(autouse=True)
def empty_catalog():
    ItemPrice.objects.all().delete()


def test_a_price_is_stored_with_everything_the_page_shows(django_capture_on_commit_callbacks, changed):
    with django_capture_on_commit_callbacks(execute=True):
        result = apply_item_price(price())
    assert (result.applied, result.created, result.reason) == (True, True, "created")
    row = ItemPrice.objects.get()
    assert (row.id, row.item_id, row.external_name, row.description) == (
        "team-USD-monthly",
        "team",
        "Team",
        "For growing teams",
    )
    assert (row.status, row.currency, row.price, row.pricing_model) == ("active", "USD", 1500, "per_unit")
    assert (row.period, row.period_unit, row.trial_period, row.trial_period_unit) == (1, "month", 14, "day")
    assert row.resource_version == VERSION and row.is_available
    assert changed == [("team-USD-monthly", "active", True)]


def test_tiers_are_kept_in_chargebees_order_the_last_open_ended():
    apply_item_price(price("volume_yearly"))
    row = ItemPrice.objects.get()
    assert row.pricing_model == "volume" and row.price is None
    assert row.tiers == [
        {"starting_unit": 1, "ending_unit": 10, "price": 12000},
        {"starting_unit": 11, "ending_unit": None, "price": 9600},
    ]


def test_ordering_guard_older_ignored_equal_and_different_applied(django_capture_on_commit_callbacks, changed):
    with django_capture_on_commit_callbacks(execute=True):
        apply_item_price(price(version=5, price=2000))
        assert apply_item_price(price(version=4, price=1000)).reason == "stale"
        assert apply_item_price(price(version=5, price=2000)).reason == "stale"  # the same copy again
        assert apply_item_price(price(version=5, price=2500)).reason == "updated"  # equal version: Chargebee's wins
    assert ItemPrice.objects.get().price == 2500
    assert [entry[2] for entry in changed] == [True, False]  # one signal per applied change


def test_a_deleted_price_stays_a_tombstone_an_older_event_cannot_revive():
    apply_item_price(price(version=1))
    result = apply_item_price(price(version=2), event_type="item_price_deleted")
    assert result.reason == "deleted"
    assert apply_item_price(price(version=1, price=999)).reason == "stale"
    row = ItemPrice.objects.get()
    assert row.deleted_at is not None and row.status == "deleted" and not row.is_available and row.price == 1500


def test_archived_is_kept_but_not_available():
    apply_item_price(price(status="archived"))
    row = ItemPrice.objects.get()
    assert row.status == "archived" and not row.is_available


def test_an_addon_price_is_not_stored():
    result = apply_item_price(price(item_type="addon"))
    assert (result.applied, result.reason) == (False, "not a plan")
    assert not ItemPrice.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"pricing_model": "free"},
        {"period_unit": "fortnight"},
        {"price": -1},
        {"price": "15.00"},
        {"currency_code": None},
        {"tiers": [{"starting_unit": 1, "price": "x"}]},
        {"status": "gone"},
        {"id": "x" * 101},
    ],
)
def test_unreadable_prices_raise_and_write_nothing(fields):
    with pytest.raises(InvalidSnapshot):
        apply_item_price(price(**fields))
    assert not ItemPrice.objects.exists()


# -- webhooks ----------------------------------------------------------------------------------------


def test_item_price_events_go_through_the_delivery_log(client):
    assert post_event(client, event("item_price_created", price(version=1))).status_code == 200
    assert post_event(client, event("item_price_updated", price(version=2, price=1700), "ev_2")).status_code == 200
    assert post_event(client, event("item_price_updated", price(version=2, price=1700), "ev_2")).status_code == 200
    assert ItemPrice.objects.get().price == 1700
    assert WebhookDelivery.objects.count() == 2  # the repeated event id was recorded once
    assert post_event(client, event("item_price_deleted", price(version=3), "ev_3")).status_code == 200
    assert ItemPrice.objects.get().deleted_at is not None


def test_a_stale_price_event_is_recorded_as_ignored(client):
    post_event(client, event("item_price_updated", price(version=5), "ev_new"))
    post_event(client, event("item_price_updated", price(version=1, price=1), "ev_old"))
    delivery = WebhookDelivery.objects.get(event_id="ev_old")
    assert delivery.status == "ignored" and "stale" in delivery.last_error
    assert ItemPrice.objects.get().price == 1500


def test_an_unreadable_price_event_is_a_400_and_writes_nothing(client):
    response = post_event(client, event("item_price_updated", price(pricing_model="free")))
    assert response.status_code == 400
    assert not ItemPrice.objects.exists()
    response = post_event(client, {**event("item_price_updated", price()), "content": {}}, event_id="ev_x")
    assert response.status_code == 400


# -- the sync pass -------------------------------------------------------------------------------


class ListingGateway:
    """Stands in for the gateway's item price listing (the fake Chargebee's is tested in test_fake_chargebee_prices)."""

    def __init__(self, prices: list[dict]):
        self.prices = prices
        self.asked: list[int | None] = []

    def iter_item_prices(self, *, updated_after=None):
        self.asked.append(updated_after)
        return iter(self.prices)


def test_a_full_sync_applies_each_listed_price_and_tombstones_those_not_listed(monkeypatch):
    apply_item_price(price(id="old-USD-monthly"))
    ItemPrice.objects.filter(pk="old-USD-monthly").update(updated_at="2020-01-01T00:00:00Z")
    gateway = ListingGateway([price(), price("volume_yearly"), price(pricing_model="free", id="bad")])
    monkeypatch.setattr("orgbilling.prices.get_gateway", lambda: gateway)
    summary = sync_item_prices()
    assert (summary.created, summary.failed, summary.gone) == (2, ["bad"], ["old-USD-monthly"])
    assert ItemPrice.objects.get(pk="old-USD-monthly").status == "deleted"
    again = sync_item_prices(dry_run=True)
    assert (again.unchanged, again.created, again.gone) == (2, 0, [])


def test_a_dry_run_writes_nothing_and_since_never_calls_anything_gone(monkeypatch):
    from datetime import UTC, datetime

    apply_item_price(price(id="old-USD-monthly"))
    ItemPrice.objects.filter(pk="old-USD-monthly").update(updated_at="2020-01-01T00:00:00Z")
    gateway = ListingGateway([price()])
    monkeypatch.setattr("orgbilling.prices.get_gateway", lambda: gateway)
    summary = sync_item_prices(dry_run=True)
    assert summary.created == 1 and summary.gone == ["old-USD-monthly"]
    assert set(ItemPrice.objects.values_list("pk", "status")) == {("old-USD-monthly", "active")}
    summary = sync_item_prices(since=datetime(2026, 1, 1, tzinfo=UTC))
    assert summary.gone == [] and gateway.asked[-1] == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert ItemPrice.objects.get(pk="old-USD-monthly").status == "active"


def test_orgbilling_sync_has_a_prices_pass(monkeypatch):
    import io

    from django.core.management import call_command

    monkeypatch.setattr("orgbilling.prices.get_gateway", lambda: ListingGateway([price()]))
    out = io.StringIO()
    call_command("orgbilling_sync", "--prices", stdout=out)
    assert "prices: item prices: created 1, updated 0, unchanged 0, gone from Chargebee 0, failed 0" in out.getvalue()
