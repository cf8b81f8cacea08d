"""A socket with a deadline for the whole exchange, for the ``http://`` target.

:class:`DeadlineSocket` wraps a connected socket so that every send and read
waits at most ``min(timeout, time left before the deadline)``; http.client
reads through it, so a server that trickles bytes cannot hold a query past its
deadline.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineSocket:
    """A connected socket whose every send and read waits at most ``min(timeout, time left)``.

    http.client reads through ``makefile()``; each read here is one ``recv``, so a
    server that trickles bytes meets the deadline however slowly it sends.
    ``ended`` tells whether a read found the connection closed.
    """

    def __init__(self, sock: socket.socket, ends: float, timeout: float, deadline: float):
        self.sock, self.ends, self.timeout, self.deadline = sock, ends, timeout, deadline
        self.ended = False

    def step(self, operation: Callable[..., T], *args: object) -> T:
        """Run one socket operation for at most ``min(timeout, time left)`` seconds."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise self.expired()
        self.sock.settimeout(min(self.timeout, left))
        try:
            return operation(*args)
        except TimeoutError:
            if left < self.timeout:  # it was the deadline that ran out
                raise self.expired() from None
            raise

    def expired(self) -> TimeoutError:
        return TimeoutError(
            f"no complete answer within deadline={self.deadline:g} s "
            f"(one attempt, from connecting to the answer's last byte)"
        )

    def sendall(self, data: bytes) -> None:
        self.step(self.sock.sendall, data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self, self.sock.makefile("rb", buffering=0)))

    def close(self) -> None:
        self.sock.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


class DeadlineReader(io.RawIOBase):
    """The raw input of a :class:`DeadlineSocket` (one ``recv`` per read)."""

    def __init__(self, owner: DeadlineSocket, raw: io.RawIOBase):
        super().__init__()
        self.owner, self.raw = owner, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self.owner.step(self.raw.readinto, buffer)
        if not count and len(buffer):
            self.owner.ended = True
        return count or 0

    def close(self) -> None:
        self.raw.close()
        super().close()
