"""The Chargebee gateway over real HTTP against the fake: retries, idempotency, meta_data, errors."""

import pytest

from orgbilling.chargebee_gateway import ChargebeeError, customer_meta_data, get_gateway


@pytest.fixture
def gateway(fake_chargebee):
    return get_gateway()


def test_meta_data_keeps_its_key_case_and_is_json(gateway, fake_chargebee):
    gateway.create_customer(customer_id="org_1", company="Acme", meta_data=customer_meta_data("org_1", "sub_x"))
    [call] = fake_chargebee.calls("POST", "/customers")
    assert (
        call.params["meta_data"]
        == '{"organizationId": "org_1", "customerType": "organization", "pendingSubscriptionId": "sub_x"}'
    )


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_errors_are_retried_a_bounded_number_of_times(gateway, fake_chargebee, settings, status):
    fake_chargebee.fail_next(100, status=status)
    with pytest.raises(ChargebeeError) as caught:
        get_gateway().retrieve_customer("org_1")
    assert caught.value.http_status == status
    assert len(fake_chargebee.calls("GET", "/customers/org_1")) == 3  # CHARGEBEE_MAX_RETRIES defaults to 2


def test_rate_limit_error_code_is_kept(gateway, fake_chargebee, settings):
    settings.CHARGEBEE_MAX_RETRIES = 0
    fake_chargebee.fail_next(1, status=429)
    with pytest.raises(ChargebeeError) as caught:
        get_gateway().retrieve_customer("org_1")
    assert caught.value.api_error_code == "api_request_limit_exceeded"


def test_client_errors_are_not_retried(gateway, fake_chargebee):
    with pytest.raises(ChargebeeError) as caught:
        gateway.retrieve_customer("org_missing")
    assert (caught.value.http_status, caught.value.api_error_code) == (404, "resource_not_found")
    assert len(fake_chargebee.calls("GET", "/customers/org_missing")) == 1


def test_post_retries_reuse_one_idempotency_key(gateway, fake_chargebee):
    fake_chargebee.fail_next(2, status=503, path="/customers")
    gateway.create_customer(customer_id="org_1", company="Acme", meta_data=customer_meta_data("org_1"))
    keys = [call.headers.get("chargebee-idempotency-key") for call in fake_chargebee.calls("POST", "/customers")]
    assert len(keys) == 3 and len(set(keys)) == 1 and keys[0]


def test_timeout_becomes_a_clear_error(fake_chargebee, settings):
    settings.CHARGEBEE_READ_TIMEOUT = 0.3
    settings.CHARGEBEE_MAX_RETRIES = 1
    fake_chargebee.fail_next(5, timeout_seconds=1)
    with pytest.raises(ChargebeeError) as caught:
        get_gateway().retrieve_customer("org_1")
    assert caught.value.api_error_code == "timeout" and caught.value.retryable
    assert len(fake_chargebee.calls("GET", "/customers/org_1")) == 2


def test_unreachable_chargebee_is_a_network_error(settings):
    settings.CHARGEBEE_MAX_RETRIES = 0
    with pytest.raises(ChargebeeError) as caught:
        get_gateway().retrieve_customer("org_1")  # conftest points at a closed port
    assert caught.value.api_error_code == "network_error"


def test_iter_subscriptions_pages_by_100(gateway, fake_chargebee):
    for _ in range(230):
        fake_chargebee.create_subscription(customer_id="org_1", item_price_id="plan", quantity=1)
    fake_chargebee.create_subscription(customer_id="org_2", item_price_id="plan", quantity=1)
    assert len(list(gateway.iter_subscriptions(customer_id="org_1"))) == 230
    assert len(fake_chargebee.calls("GET", "/subscriptions")) == 3


def test_cancelling_now_is_idempotent(gateway, fake_chargebee):
    sub = fake_chargebee.create_subscription(customer_id="org_1", item_price_id="plan", quantity=1)
    assert gateway.cancel_subscription_now(sub["id"])["status"] == "cancelled"
    again = gateway.cancel_subscription_now(sub["id"])  # e.g. the retry of a try that timed out but went through
    assert again["status"] == "cancelled" and again["id"] == sub["id"]
    with pytest.raises(ChargebeeError):
        gateway.cancel_subscription_now("sub_missing")


def test_calls_share_one_tls_context_per_process(gateway, fake_chargebee, monkeypatch):
    """The SDK built (and read a CA bundle for) an SSL context on every call: ~20 ms of CPU each."""
    import ssl

    from orgbilling import chargebee_transport

    built, real = [], ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **kw: built.append(kw) or real(*a, **kw))
    chargebee_transport.tls_context.cache_clear()
    for _ in range(3):
        with pytest.raises(ChargebeeError):
            gateway.retrieve_customer("org_missing")
    assert len(fake_chargebee.calls("GET")) == 3 and len(built) == 1


def test_an_https_site_is_still_called_over_verified_https(monkeypatch):
    import ssl

    import httpx
    from chargebee.main import Chargebee

    from orgbilling.chargebee_gateway import ChargebeeGateway
    from orgbilling.chargebee_transport import tls_context

    seen = {}

    def refuse(self, method, url, **kwargs):
        seen.update(url=str(url), context=self._transport._pool._ssl_context)
        raise httpx.ConnectError("not here")

    monkeypatch.setattr(httpx.Client, "request", refuse)
    with pytest.raises(ChargebeeError):
        ChargebeeGateway(api_key="key", site="acme", max_retries=0).retrieve_customer("org_1")
    assert seen["url"] == "https://acme.chargebee.com/api/v2/customers/org_1"
    assert seen["context"] is tls_context(Chargebee.ca_cert_path)
    assert (seen["context"].verify_mode, seen["context"].check_hostname) == (ssl.CERT_REQUIRED, True)
