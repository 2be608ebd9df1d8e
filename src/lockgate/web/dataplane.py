"""The data plane over HTTP: the Open Inference Protocol V2 REST surface and the MLflow
scoring endpoint, as a small ASGI app of its own (no framework on the hot path).

Every handler is "parse, call, render": decode the body, call :class:`DataPlane`, encode.
Errors are ``{"error": "..."}`` with a 4xx status (404 for an unknown model/endpoint, 503
with Retry-After when a queue is full, 504 past the request deadline).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from lockgate import __version__
from lockgate.errors import InvalidInputError, LockgateError, OverloadedError
from lockgate.serving import codec
from lockgate.serving.dataplane import DataPlane, status_of

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_MAX_BODY = 256 * 1024 * 1024

_MODEL_RE = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<tail>/ready|/infer)?/?$"
)
_SERVER_ROUTES = ("/v2", "/v2/health/live", "/v2/health/ready")
_MLFLOW_RE = re.compile(r"^/v1/endpoints/(?P<name>[^/]+)/(?P<action>predict|invocations)/?$")


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > _MAX_BODY:
                raise InvalidInputError.for_field("body", f"at most {_MAX_BODY} bytes", size)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, exc: LockgateError) -> None:
    status = status_of(exc)
    headers = []
    if isinstance(exc, OverloadedError):
        headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
    await respond(send, status, codec.dumps({"error": exc.message}), headers)


async def method_not_allowed(send: Send, method: str, path: str, allowed: str) -> None:
    await respond(
        send,
        405,
        codec.dumps({"error": f"method {method} is not allowed on {path}; use {allowed}"}),
        [(b"allow", allowed.encode())],
    )


def request_key(scope: Scope) -> str | None:
    """The ``X-Lockgate-Key`` header: the key of sticky canary and A/B assignment."""
    for name, value in scope.get("headers") or ():
        if name == b"x-lockgate-key":
            return bytes(value).decode("latin-1") or None
    return None


def binary_header_length(scope: Scope) -> int | None:
    """The ``Inference-Header-Content-Length`` of OIP's binary tensor data extension
    (tritonclient's default): the JSON header's size, raw tensor bytes following it."""
    for name, value in scope.get("headers") or ():
        if name == b"inference-header-content-length":
            raw = bytes(value).decode("latin-1").strip()
            if not raw.isdigit():
                raise InvalidInputError.for_field(
                    "Inference-Header-Content-Length", "a byte count", raw
                )
            return int(raw)
    return None


def _version_param(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInputError.for_field("version", "a positive integer", raw)
    return int(raw)


class DataPlaneApp:
    """ASGI app for ``/v2/...`` and ``/v1/endpoints/...``."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path.startswith("/v2"):
                await self._oip(path, method, scope, receive, send)
            else:
                m = _MLFLOW_RE.match(path)
                if m is None:
                    await respond(send, 404, codec.dumps({"error": f"no route {path}"}))
                elif method != "POST":
                    await method_not_allowed(send, method, path, "POST")
                else:
                    await self._mlflow(m["name"], receive, send, request_key(scope))
        except LockgateError as exc:
            await respond_error(send, exc)

    async def _oip(
        self, path: str, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        route = path.rstrip("/") or path
        m = None if route in _SERVER_ROUTES else _MODEL_RE.match(path)
        if route not in _SERVER_ROUTES and m is None:
            await respond(send, 404, codec.dumps({"error": f"no route {path}"}))
            return
        allowed = "POST" if m is not None and m["tail"] == "/infer" else "GET"
        if method != allowed:
            await method_not_allowed(send, method, path, allowed)
            return
        if route == "/v2":
            await respond(
                send,
                200,
                codec.dumps(
                    {
                        "name": "lockgate",
                        "version": __version__,
                        "extensions": ["model_repository_metadata"],
                    }
                ),
            )
            return
        if route == "/v2/health/live":
            await respond(send, 200, codec.dumps({"live": True}))
            return
        if route == "/v2/health/ready":
            ready = self.plane.ready
            await respond(send, 200 if ready else 503, codec.dumps({"ready": ready}))
            return
        assert m is not None
        name, tail = m["name"], m["tail"]
        version = _version_param(m["version"])
        if tail == "/infer":
            await self._infer(
                name, version, receive, send, request_key(scope), binary_header_length(scope)
            )
            return
        handle = self.plane.handle(name, version)
        if tail == "/ready":
            await respond(send, 200, codec.dumps({"name": name, "ready": True}))
            return
        st = self.plane.endpoint(name)
        meta = codec.signature_metadata(
            name,
            [str(v) for v in sorted(st.handles)],
            handle.signature,
            f"lockgate_{handle.loaded.version.flavor}",
        )
        await respond(send, 200, codec.dumps(meta))

    async def _infer(
        self,
        name: str,
        version: int | None,
        receive: Receive,
        send: Send,
        key: str | None,
        header_length: int | None = None,
    ) -> None:
        self.plane.endpoint(name)  # 404 before reading a large body for nothing
        req = codec.decode_oip(await read_body(receive), header_length)
        result = await self.plane.infer(
            name,
            lambda sig: codec.oip_batch(req, sig),
            version=version,
            request_id=req.id,
            key=key,
        )
        body = codec.encode_oip_response(
            model=name,
            version=result.version,
            request_id=result.request_id,
            outputs=result.outputs,
            signature=result.signature,
            parameters=req.parameters,
        )
        await respond(send, 200, body)

    async def _mlflow(self, name: str, receive: Receive, send: Send, key: str | None) -> None:
        self.plane.endpoint(name)
        decode = codec.decode_mlflow(await read_body(receive))
        result = await self.plane.infer(name, decode, key=key)
        await respond(
            send,
            200,
            codec.encode_mlflow_response(result.outputs, result.prediction_ids()),
            [
                (b"x-lockgate-request-id", result.request_id.encode()),
                (b"x-lockgate-version", str(result.version).encode()),
            ],
        )
