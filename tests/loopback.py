"""HTTP for the tests, which speak plain HTTP to real servers on loopback.

``httpx.get()``, ``httpx.post()`` and ``httpx.Client()`` build a new SSL context each time,
loading the CA bundle: 57 ms of CPU on the 2-core CI machine, paid by every readiness poll
(every 50 ms) while a server starts on the other core, and by every request of a polling
loop. These helpers are the same calls with one SSL context, built once: an
``ssl.SSLContext`` may be shared between clients and threads."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

SSL_CONTEXT = ssl.create_default_context()


def get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, verify=SSL_CONTEXT, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(url, verify=SSL_CONTEXT, **kwargs)


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(verify=SSL_CONTEXT, **kwargs)
