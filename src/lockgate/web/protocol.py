"""The HTTP protocol of ``lockgate server``: uvicorn's httptools protocol, with each
response leaving in one system call.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and its body at ``http.response.body``: two ``send`` calls for
every response, each a trip through the kernel's TCP stack (on loopback the receiving half
runs inside the sender's call too). :class:`CoalescingTransport` holds what is written
during one turn of the event loop and hands it on at the end of the turn, all at once
(``writelines``: one ``writev``). A turn is microseconds: nothing waits for a timer.

What it holds is bounded (:data:`HOLD_BYTES`): a larger write goes out at once, after what
was held, so a streamed body still meets the real transport's flow control (it pauses the
protocol when the socket's buffer fills) as it would without this layer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: bytes held for the end of the turn at most; a write that would pass it flushes
HOLD_BYTES = 64 * 1024


class CoalescingTransport:
    """A transport that passes writes made in one event-loop turn on as one write."""

    __slots__ = ("_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes | bytearray | memoryview] | None = None
        self._held_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        size = len(data)
        if held is None:
            if size >= HOLD_BYTES:
                self._transport.write(data)
                return
            if data.__class__ is not bytes:  # the caller may reuse a buffer once written
                data = bytes(data)
            self._held = [data]
            self._held_bytes = size
            self._loop.call_soon(self.flush)
        elif self._held_bytes + size >= HOLD_BYTES:
            held.append(data)
            self.flush()
        else:
            held.append(data if data.__class__ is bytes else bytes(data))
            self._held_bytes += size

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Hand what is held to the real transport (the end-of-turn callback; also called
        before the transport closes). A connection that closed meanwhile drops it, as the
        real transport drops what a closed connection could not send."""
        held, self._held = self._held, None
        if not held:
            return
        self._held_bytes = 0
        transport = self._transport
        if transport.is_closing():
            return
        if len(held) == 1:
            transport.write(held[0])
        else:
            transport.writelines(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._held_bytes = 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._held_bytes

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # the rest of the transport's interface
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
