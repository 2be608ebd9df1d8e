"""A webhook receiver on loopback: a tiny HTTP server in a thread that records every request
and answers with scripted statuses (then 200)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Received:
    t: float  # monotonic time of arrival
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    #: statuses answered to the first requests, in order (then 200)
    script: list[int] = field(default_factory=list)
    #: extra headers of scripted answers (a Location for a redirect)
    headers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.requests)} webhook requests within {timeout}s, not {n}")

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.requests]


@contextmanager
def receiver(
    script: list[int] | None = None, headers: dict[str, str] | None = None
) -> Iterator[Receiver]:
    rec = Receiver("", script=list(script or []), headers=dict(headers or {}))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(size)
            with rec.lock:
                rec.requests.append(
                    Received(time.monotonic(), self.path, dict(self.headers.items()), body)
                )
                status = rec.script.pop(0) if rec.script else 200
            self.send_response(status)
            if 300 <= status < 400:
                for k, v in rec.headers.items():
                    self.send_header(k, v)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
