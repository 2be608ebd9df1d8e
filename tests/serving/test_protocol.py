"""The server's HTTP protocol: writes made in one event-loop turn leave as one write.

A real event loop (uvloop, what the server runs) and real sockets; the real transport is
wrapped in a spy that records each call and passes it on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop
from tests import loopback

from lockgate.web import protocol
from lockgate.web.protocol import CoalescingHttpToolsProtocol, CoalescingTransport


class Spy:
    """Records the writes that reach the real transport, and makes them."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.calls: list[tuple[str, list[bytes]]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", [bytes(data)]))
        self.transport.write(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(("writelines", [bytes(x) for x in lines]))
        self.transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def pair() -> tuple[CoalescingTransport, Spy, socket.socket]:
    """A coalescing transport over a real socket, its spy, and the peer's socket."""
    mine, peer = socket.socketpair()
    peer.setblocking(False)
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=mine)
    spy = Spy(transport)  # type: ignore[arg-type]
    return CoalescingTransport(spy, asyncio.get_running_loop()), spy, peer  # type: ignore[arg-type]


async def receive(peer: socket.socket, want: int, timeout: float = 5) -> bytes:
    got = b""
    loop = asyncio.get_running_loop()
    while len(got) < want:
        chunk = await asyncio.wait_for(loop.sock_recv(peer, 1 << 20), timeout)
        if not chunk:
            break
        got += chunk
    return got


def run(coro: Any) -> Any:
    return uvloop.run(coro)


def test_the_writes_of_one_turn_leave_as_one_call() -> None:
    async def main() -> None:
        t, spy, peer = await pair()
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        t.write(b"hello")
        assert spy.calls == []  # held until the turn ends
        assert t.get_write_buffer_size() == 43
        await asyncio.sleep(0)
        assert [c[0] for c in spy.calls] == ["writelines"]
        assert await receive(peer, 43) == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
        t.write(b"one")  # a lone write stays a plain write
        await asyncio.sleep(0)
        assert spy.calls[1] == ("write", [b"one"])
        assert await receive(peer, 3) == b"one"
        t.close()

    run(main())


def test_a_buffer_reused_after_its_write_does_not_change_what_is_sent() -> None:
    async def main() -> None:
        t, _, peer = await pair()
        buf = bytearray(b"first")
        t.write(buf)
        buf[:] = b"XXXXX"  # what a caller may do once write() returned
        t.write(memoryview(buf))
        buf[:] = b"YYYYY"
        await asyncio.sleep(0)
        assert await receive(peer, 10) == b"firstXXXXX"
        t.close()

    run(main())


def test_a_large_write_goes_at_once_after_what_is_held() -> None:
    async def main() -> None:
        t, spy, peer = await pair()
        big = bytes(range(256)) * (protocol.HOLD_BYTES // 256 + 1)
        t.write(b"head")
        t.write(big)  # past the bound: flushed now, in order
        assert spy.calls == [("writelines", [b"head", big])]
        t.write(big)  # alone and large: not held
        assert spy.calls[1] == ("write", [big])
        assert t.get_write_buffer_size() == spy.transport.get_write_buffer_size()
        got = await receive(peer, 4 + 2 * len(big))
        assert got == b"head" + big + big
        t.close()

    run(main())


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    async def main() -> None:
        t, _, peer = await pair()
        t.write(b"last words")
        t.close()
        assert await receive(peer, 100) == b"last words"  # then EOF
        t2, spy2, peer2 = await pair()
        t2.write(b"dropped")
        t2.abort()
        await asyncio.sleep(0.01)
        assert spy2.calls == []
        assert await receive(peer2, 1) == b""

    run(main())


def test_a_connection_closed_within_the_turn_drops_quietly() -> None:
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        t, spy, _ = await pair()
        t.write(b"too late")
        spy.transport.close()  # closed under the protocol, before the turn ends
        await asyncio.sleep(0.01)
        assert spy.calls == []

    run(main())
    assert errors == []


# -- a real uvicorn server with the protocol ------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":  # a body in many chunks, without a pause between them
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(400):
            chunk = bytes([i % 251]) * 20_000
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = scope["path"].encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=CoalescingHttpToolsProtocol,
        loop="uvloop",
        lifespan="off",
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(20)


def test_pipelined_requests_get_their_own_answers_in_order(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"".join(b"GET /r%d HTTP/1.1\r\nhost: x\r\n\r\n" % i for i in range(20)))
        s.settimeout(5)
        got = b""
        with contextlib.suppress(TimeoutError):
            while got.count(b"HTTP/1.1 200") < 20 or not got.endswith(b"/r19"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in got.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"/r%d" % i for i in range(20)]


def test_a_streamed_body_larger_than_the_socket_buffers_arrives_whole(server: str) -> None:
    """8 MB in 400 chunks sent without a pause, to a client that reads slowly: the held
    bytes stay bounded and the transport's flow control still applies."""
    expected = b"".join(bytes([i % 251]) * 20_000 for i in range(400))
    with httpx.stream("GET", f"{server}/stream", timeout=30) as r:
        got = bytearray()
        for chunk in r.iter_raw(65536):
            got += chunk
            if len(got) < 1_000_000:
                time.sleep(0.001)  # a slow reader at first: the server's buffer fills
    assert bytes(got) == expected


def test_keep_alive_responses_over_one_connection(server: str) -> None:
    with loopback.client(base_url=server) as c:
        for i in range(50):
            r = c.get(f"/k{i}")
            assert r.status_code == 200 and r.content == b"/k%d" % i
