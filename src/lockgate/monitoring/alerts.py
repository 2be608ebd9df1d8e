"""Webhook delivery of alerts: validated URLs, signed JSON bodies, retries with backoff.

Every request is a ``POST`` of the alert as JSON (``Content-Type: application/json``) with

- ``X-Lockgate-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body under the webhook's
  secret (receivers recompute it and compare in constant time, see :func:`verify`);
- ``X-Lockgate-Alert-Id``: the alert id, the same on every retry (for deduplication by the
  receiver: delivery is at least once);
- ``X-Lockgate-Delivery-Attempt``: 1, 2, ...

Only ``http`` and ``https`` URLs with a host are accepted. Redirects are never followed: a
3xx answer is a failed delivery. A delivery is retried on a connection error, a timeout,
408, 429 and 5xx answers, after ``backoff * 2**(attempt - 1)`` seconds (a numeric
``Retry-After`` is honoured up to ``max_backoff``); any other 4xx is final. Secrets never
appear in a log line, an event or an error; URLs are logged without path and query, which
often carry tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from lockgate.errors import InvalidInputError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("lockgate.alerts")

SIGNATURE_HEADER = "X-Lockgate-Signature"
ALERT_ID_HEADER = "X-Lockgate-Alert-Id"
ATTEMPT_HEADER = "X-Lockgate-Delivery-Attempt"
SCHEMES = frozenset({"http", "https"})
MAX_URL = 2048
_RETRY_STATUS = frozenset({408, 425, 429})


def validate_webhook_url(url: object) -> str:
    """An ``http``/``https`` URL with a host and no credentials; raises InvalidInputError
    (field ``webhooks.url``) otherwise."""
    field_name = "webhooks.url"
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise InvalidInputError.for_field(field_name, f"an http(s) URL of 1-{MAX_URL} chars", url)
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidInputError.for_field(field_name, "a URL without spaces", redact_url(url))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInputError.for_field(field_name, "a valid URL", redact_url(url)) from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidInputError.for_field(
            field_name, "an http:// or https:// URL", f"a {parts.scheme or 'scheme-less'} URL"
        )
    if not parts.hostname:
        raise InvalidInputError.for_field(field_name, "a URL with a host", redact_url(url))
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError.for_field(
            field_name, "a URL without user:password@ (use the signing secret)", redact_url(url)
        )
    return url


def redact_url(url: str) -> str:
    """``https://hooks.example.com/...``: scheme, host and port only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    rest = "/..." if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str | None) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of delivering one alert to one webhook (``url`` is redacted)."""

    url: str
    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "attempts": self.attempts,
            "status_code": self.status_code,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class WebhookSender:
    """Posts signed bodies with retries. ``transport`` (an httpx transport) and ``sleep``
    are injectable for tests; redirects are never followed."""

    timeout: float = 5.0
    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    user_agent: str = "lockgate"

    def send(
        self, url: str, body: bytes, secret: str | None, *, alert_id: int | None = None
    ) -> DeliveryResult:
        import httpx

        shown = redact_url(url)
        started = time.monotonic()
        if not secret:
            return DeliveryResult(
                shown, False, 0, error="no signing secret: set the webhook's secret or "
                "LOCKGATE_WEBHOOK_SECRET",
            )  # fmt: skip
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            SIGNATURE_HEADER: sign(body, secret),
        }
        if alert_id is not None:
            headers[ALERT_ID_HEADER] = str(alert_id)
        error: str | None = None
        status: int | None = None
        attempt = 0
        with httpx.Client(
            timeout=self.timeout, follow_redirects=False, transport=self.transport
        ) as client:
            while attempt < self.attempts:
                attempt += 1
                headers[ATTEMPT_HEADER] = str(attempt)
                retry_after: float | None = None
                try:
                    r = client.post(url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    status, error = None, f"{type(exc).__name__}: {_clean(str(exc), url)}"
                else:
                    status = r.status_code
                    if 200 <= status < 300:
                        return DeliveryResult(
                            shown, True, attempt, status, None, time.monotonic() - started
                        )
                    if 300 <= status < 400:
                        error = f"answered {status} (a redirect): not followed"
                        break
                    error = f"answered {status}"
                    if status < 500 and status not in _RETRY_STATUS:
                        break
                    retry_after = _retry_after(r.headers.get("retry-after"))
                if attempt < self.attempts:
                    delay = self.backoff * 2 ** (attempt - 1)
                    if retry_after is not None:
                        delay = max(delay, retry_after)
                    delay = min(delay, self.max_backoff)
                    log.info(
                        "alert %s to %s: attempt %d failed (%s); retrying in %.2fs",
                        alert_id, shown, attempt, error, delay,
                    )  # fmt: skip
                    self.sleep(delay)
        return DeliveryResult(shown, False, attempt, status, error, time.monotonic() - started)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _clean(message: str, url: str) -> str:
    """An error message without the URL's path or query."""
    return message.replace(url, redact_url(url))


@dataclass
class Delivery:
    """One alert for its webhooks: ``targets`` are (url, secret) pairs."""

    alert_id: int
    body: bytes
    targets: list[tuple[str, str | None]]
    results: list[DeliveryResult] = field(default_factory=list)


class Dispatcher:
    """Delivers alerts off the caller's thread: one worker thread drains a queue and calls
    ``on_done(delivery)`` after each alert's webhooks were tried. With ``background=False``
    :meth:`submit` delivers before returning (for tools and tests)."""

    def __init__(
        self,
        sender: WebhookSender,
        on_done: Callable[[Delivery], None],
        *,
        background: bool = True,
    ) -> None:
        self.sender = sender
        self.on_done = on_done
        self.background = background
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inflight: set[int] = set()
        self._closed = False

    def inflight(self) -> set[int]:
        with self._lock:
            return set(self._inflight)

    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery; False when that alert is already queued or being delivered."""
        with self._lock:
            if self._closed or delivery.alert_id in self._inflight:
                return False
            self._inflight.add(delivery.alert_id)
            if self.background and self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="lockgate-alerts", daemon=True
                )
                self._thread.start()
        if self.background:
            self._queue.put(delivery)
        else:
            self._deliver(delivery)
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(item)

    def _deliver(self, d: Delivery) -> None:
        try:
            for url, secret in d.targets:
                result = self.sender.send(url, d.body, secret, alert_id=d.alert_id)
                d.results.append(result)
                if result.ok:
                    log.info("alert %s delivered to %s", d.alert_id, result.url)
                else:
                    log.error(
                        "alert %s not delivered to %s after %d attempt(s): %s",
                        d.alert_id, result.url, result.attempts, result.error,
                    )  # fmt: skip
            self.on_done(d)
        except Exception:  # never kill the worker: the alert stays pending and is retried
            log.exception("alert %s: delivery bookkeeping failed", d.alert_id)
        finally:
            with self._lock:
                self._inflight.discard(d.alert_id)

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking deliveries; wait up to ``timeout`` for the queued ones."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
