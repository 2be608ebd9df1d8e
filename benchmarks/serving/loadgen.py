"""Closed-loop HTTP/1.1 load generator, the fallback when ``wrk`` is not installed.

``connections`` keep-alive connections each send one request, wait for the whole answer,
send the next, for ``duration`` seconds; the latencies of all answers are kept. Prints one
line ``WRKJSON {...}`` with the same fields as the wrk script of ``run.py``.

    python benchmarks/serving/loadgen.py URL BODIES_FILE CONNECTIONS DURATION
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import numpy as np


async def _conn(
    host: str, port: int, reqs: list[bytes], stop: float, lat: list[float], errs: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < stop:
            req = reqs[i % len(reqs)]
            i += 1
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            if not 200 <= status < 400:
                errs[0] += 1
    finally:
        writer.close()


async def run(url: str, bodies: list[bytes], connections: int, duration: float) -> dict[str, float]:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    reqs = [
        b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (u.path.encode(), host.encode(), len(b), b)
        for b in bodies
    ]
    lat: list[float] = []
    errs = [0]
    t0 = time.perf_counter()
    stop = t0 + duration
    await asyncio.gather(*(_conn(host, port, reqs, stop, lat, errs) for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    us = np.asarray(lat) * 1e6
    return {
        "requests": len(lat),
        "duration_us": elapsed * 1e6,
        "errors_status": errs[0],
        "errors_connect": 0,
        "errors_read": 0,
        "errors_write": 0,
        "errors_timeout": 0,
        "p50": float(np.percentile(us, 50)),
        "p90": float(np.percentile(us, 90)),
        "p99": float(np.percentile(us, 99)),
        "mean": float(us.mean()),
        "max": float(us.max()),
    }


def main() -> None:
    url, path, conns, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    with open(path, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    print("WRKJSON " + json.dumps(asyncio.run(run(url, bodies, conns, duration))), flush=True)


if __name__ == "__main__":
    main()
