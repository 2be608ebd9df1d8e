"""The floor: the least a Python server must do to answer an OIP-style inference request.

A bare ASGI app on uvicorn with Lockgate's own uvicorn flags (httptools, uvloop when
installed, no access log, one worker). It parses the JSON body with orjson, builds the NumPy
array, calls ``model.predict`` and returns OIP-shaped JSON: no validation, no logging, no
metrics, no routing beyond one path check.

    python benchmarks/serving/floor_app.py MODEL.joblib PORT
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import joblib
import numpy as np
import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(model: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # /v2/health/ready and friends
            body = b'{"ready":true}'
        else:
            chunks = []
            while True:
                msg = await receive()
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body", False):
                    break
            doc = orjson.loads(b"".join(chunks))
            t = doc["inputs"][0]
            x = np.asarray(t["data"], dtype=np.float64).reshape(t["shape"])
            y = model.predict(x)
            body = orjson.dumps(
                {
                    "model_name": "bench",
                    "outputs": [
                        {
                            "name": "predict",
                            "shape": list(y.shape),
                            "datatype": "INT64",
                            "data": y,
                        }
                    ],
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main(model_path: str, port: int) -> None:
    import uvicorn

    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.Config  # noqa: B018 - same flags as lockgate.server.run
    uvicorn.run(
        make_app(joblib.load(model_path)),
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
        log_level="warning",
        http="httptools",
        loop=loop,
        timeout_keep_alive=30,
        backlog=2048,
        workers=None,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
