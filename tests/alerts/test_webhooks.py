"""Webhook delivery against a real receiver on loopback: signatures, URL validation, no
redirects, retries with backoff, and secrets kept out of logs."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging

import orjson
import pytest
from tests.alerts.receiver import receiver

from lockgate.errors import InvalidInputError
from lockgate.monitoring.alerts import (
    SIGNATURE_HEADER,
    Delivery,
    Dispatcher,
    WebhookSender,
    redact_url,
    sign,
    validate_webhook_url,
    verify,
)
from lockgate.monitoring.monitors import MonitorSpec, Webhook

SECRET = "s3cr3t-value-that-must-not-leak"
BODY = orjson.dumps({"id": 1, "status": "firing", "monitor": "m"})


def expected_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://example.com/",
        "127.0.0.1:8080/hook",
        "http:///nohost",
        "http://user:pw@example.com/hook",
        "http://example.com/a b",
        "http://example.com:99999/",
        "",
    ],
)
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_webhook_url(url)
    assert info.value.field == "webhooks.url"
    with pytest.raises(InvalidInputError):
        MonitorSpec(name="m", endpoint="e", kind="error_rate", webhooks=(url,))  # type: ignore[arg-type]


def test_valid_urls_pass_and_are_redacted_in_logs() -> None:
    assert validate_webhook_url("https://hooks.example.com/T0/B0/tok?x=1") == (
        "https://hooks.example.com/T0/B0/tok?x=1"
    )
    assert validate_webhook_url("HTTP://127.0.0.1:8080") == "HTTP://127.0.0.1:8080"
    assert redact_url("https://hooks.example.com/T0/B0/tok?x=1") == "https://hooks.example.com/..."
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_the_body_is_signed_with_hmac_sha256_and_verifiable() -> None:
    with receiver() as rec:
        result = WebhookSender(backoff=0).send(rec.url, BODY, SECRET, alert_id=7)
        got = rec.wait_for(1)[0]
    assert result.ok and result.attempts == 1 and result.status_code == 200
    assert got.body == BODY
    assert got.headers[SIGNATURE_HEADER] == expected_signature(BODY, SECRET)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Lockgate-Alert-Id"] == "7"
    assert verify(got.body, SECRET, got.headers[SIGNATURE_HEADER])
    assert not verify(got.body + b" ", SECRET, got.headers[SIGNATURE_HEADER])
    assert not verify(got.body, "another secret", got.headers[SIGNATURE_HEADER])
    assert sign(BODY, SECRET) == expected_signature(BODY, SECRET)


def test_retries_with_backoff_against_a_receiver_that_fails_twice() -> None:
    with receiver(script=[503, 500]) as rec:
        result = WebhookSender(backoff=0.2, attempts=4).send(rec.url, BODY, SECRET, alert_id=3)
        got = rec.wait_for(3)
    assert result.ok and result.attempts == 3
    assert [r.headers["X-Lockgate-Delivery-Attempt"] for r in got] == ["1", "2", "3"]
    # the same bytes and signature on every attempt
    assert {r.body for r in got} == {BODY}
    assert {r.headers[SIGNATURE_HEADER] for r in got} == {expected_signature(BODY, SECRET)}
    gaps = [b.t - a.t for a, b in itertools.pairwise(got)]
    assert gaps[0] >= 0.18, gaps  # 0.2 s, then doubled
    assert gaps[1] >= 0.38, gaps


def test_gives_up_after_the_attempts_and_does_not_retry_a_client_error() -> None:
    with receiver(script=[500, 500, 500, 500]) as rec:
        result = WebhookSender(backoff=0.01, attempts=3).send(rec.url, BODY, SECRET)
        assert len(rec.wait_for(3)) == 3
    assert not result.ok and result.attempts == 3 and result.error == "answered 500"
    with receiver(script=[400]) as rec:
        result = WebhookSender(backoff=0.01, attempts=3).send(rec.url, BODY, SECRET)
        assert len(rec.wait_for(1)) == 1
    assert not result.ok and result.attempts == 1 and result.status_code == 400


def test_a_redirect_is_not_followed() -> None:
    with receiver() as target, receiver(script=[302], headers={}) as first:
        first.headers["Location"] = target.url
        result = WebhookSender(backoff=0.01, attempts=3).send(first.url, BODY, SECRET)
        assert len(first.wait_for(1)) == 1
    assert not result.ok and result.status_code == 302 and result.attempts == 1
    assert "not followed" in (result.error or "")
    assert target.requests == []


def test_connection_errors_are_retried_and_reported() -> None:
    with receiver() as rec:
        url = rec.url
    # the receiver is gone: connection refused on every attempt
    result = WebhookSender(backoff=0.01, attempts=2, timeout=2).send(url, BODY, SECRET)
    assert not result.ok and result.attempts == 2 and result.status_code is None
    assert "ConnectError" in (result.error or "")


def test_no_secret_means_no_unsigned_request() -> None:
    with receiver() as rec:
        result = WebhookSender().send(rec.url, BODY, None)
    assert not result.ok and result.attempts == 0 and "secret" in (result.error or "")
    assert rec.requests == []


def test_the_secret_never_reaches_logs_reprs_or_public_documents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = Webhook("http://127.0.0.1:1/tok-in-path?key=abc", SECRET)
    spec = MonitorSpec(name="m", endpoint="e", kind="error_rate", webhooks=(hook,))
    assert SECRET not in repr(hook) and SECRET not in repr(spec)
    assert SECRET not in orjson.dumps(spec.to_dict()).decode()
    assert spec.to_dict()["webhooks"] == [
        {"url": "http://127.0.0.1:1/tok-in-path?key=abc", "secret": "set"}
    ]
    with receiver(script=[500]) as rec:
        done: list[Delivery] = []
        d = Dispatcher(WebhookSender(backoff=0.01, attempts=2), done.append, background=False)
        d.submit(Delivery(1, BODY, [(rec.url, SECRET), (hook.url, SECRET)]))
    assert [r.ok for r in done[0].results] == [True, False]
    text = caplog.text
    assert "127.0.0.1" in text  # the deliveries were logged...
    assert SECRET not in text  # ...without the secret
    assert "tok-in-path" not in text and "key=abc" not in text


def test_the_dispatcher_delivers_in_the_background_and_once_per_alert() -> None:
    with receiver() as rec:
        done: list[Delivery] = []
        d = Dispatcher(WebhookSender(backoff=0.01), done.append)
        assert d.submit(Delivery(5, BODY, [(rec.url, SECRET)]))
        rec.wait_for(1)
        d.close()
    assert len(done) == 1 and done[0].results[0].ok
    assert len(rec.requests) == 1
