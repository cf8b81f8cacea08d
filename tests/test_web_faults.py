"""The http:// target against servers that misbehave mid-answer, on loopback.

Each fault is a small raw-socket server in a thread of this process that reads
the request, then answers badly: it closes or resets the connection in the
middle of the answer, trickles bytes, announces or sends too much, or answers
an image of the wrong size. Every test asserts the exact error, or the image
recovered by a retry. (5xx then success, 4xx, timeouts, refused connections
and HTML answers are in test_serve.py.)
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import test_serve
from onepair.codec import decode_image, encode_image
from onepair.images import quantize
from onepair.targets import load_target
from onepair.targets.web import open_target
from test_serve import HALF_STEP_16

fake = test_serve.fake  # the fixture making scripted loopback servers (test_serve.Fake)

Behaviour = Callable[[socket.socket, bytes], None]


class RawServer:
    """A loopback server that runs ``script[i]`` on the i-th connection (the last repeats).

    Each behaviour gets the connected socket and the request body, already read.
    """

    def __init__(self, script: list[Behaviour]):
        self.script, self.connections = script, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/run"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            behaviour = self.script[min(self.connections, len(self.script)) - 1]
            threading.Thread(target=self._handle, args=(conn, behaviour), daemon=True).start()

    def _handle(self, conn: socket.socket, behaviour: Behaviour) -> None:
        with conn:
            try:
                conn.settimeout(10)
                reader = conn.makefile("rb")
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                behaviour(conn, reader.read(length))
            except OSError:
                pass  # the client went away: what some tests want

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def raw() -> Iterator[Callable[[list[Behaviour]], RawServer]]:
    made: list[RawServer] = []

    def make(script: list[Behaviour]) -> RawServer:
        made.append(RawServer(script))
        return made[-1]

    yield make
    for server in made:
        server.close()


def head(length: int | None = None, extra: str = "") -> bytes:
    """A 200 status line and headers; no Content-Length when ``length`` is None."""
    size = "" if length is None else f"Content-Length: {length}\r\n"
    return f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n{size}{extra}\r\n".encode()


def inverted(conn: socket.socket, body: bytes) -> None:
    """A correct answer: the request's image, inverted."""
    image, bits = decode_image(body)
    data = encode_image(1 - image, "png", bits)
    conn.sendall(head(len(data)) + data)


def partial_headers(conn: socket.socket, body: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: ima")


def partial_body(conn: socket.socket, body: bytes) -> None:
    conn.sendall(head(1000) + bytes(400))


def reset(conn: socket.socket, body: bytes) -> None:
    """Part of the body, then a TCP reset (RST) instead of an orderly close."""
    conn.sendall(head(1000) + bytes(400))
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def wait_for_close(conn: socket.socket, seconds: float = 5.0) -> None:
    """Hold the connection open until the client closes it (or ``seconds`` pass)."""
    conn.settimeout(seconds)
    try:
        while conn.recv(1 << 16):
            pass
    except OSError:
        pass


def trickle(prefix: bytes, seconds: float = 4.0, interval: float = 0.05) -> Behaviour:
    """Send ``prefix`` then one byte every ``interval`` s for ``seconds``, then close."""

    def behaviour(conn: socket.socket, body: bytes) -> None:
        conn.sendall(prefix)
        for _ in range(int(seconds / interval)):
            time.sleep(interval)
            conn.sendall(b"a")

    return behaviour


@pytest.fixture
def image(rng) -> np.ndarray:
    return rng.random((9, 7, 3), dtype=np.float32)


def _failure(server: RawServer, attempts: int, last: str) -> str:
    retries = attempts - 1
    return (
        f"{server.url}: no usable answer after {attempts} attempt{'s' * (attempts > 1)} "
        f"(retries={retries}); last failure: {last}"
    )


# ----------------------------------------------------------------------------- cut-off answers

RESET = f"ConnectionResetError: [Errno {errno.ECONNRESET}] {os.strerror(errno.ECONNRESET)}"


@pytest.mark.parametrize(
    ("behaviour", "last"),
    [
        (
            partial_headers,
            "RemoteDisconnected: the connection closed in the middle of the answer's headers",
        ),
        (partial_body, "IncompleteRead: IncompleteRead(400 bytes read, 600 more expected)"),
        (reset, RESET),
    ],
    ids=["headers", "body", "reset"],
)
def test_answer_cut_off_is_a_retryable_failure(raw, image, behaviour, last):
    server = raw([behaviour])
    with pytest.raises(RuntimeError) as info:
        load_target(f"{server.url}#retries=1,backoff=0")(image)
    assert str(info.value) == _failure(server, 2, last)
    assert server.connections == 2


def test_retries_recover_from_every_kind_of_cut_off_answer(raw, image):
    server = raw([partial_headers, partial_body, reset, inverted])
    out = load_target(f"{server.url}#retries=3,backoff=0")(image)
    assert server.connections == 4
    assert np.abs(out - (1 - quantize(image, 16) / 65535)).max() <= HALF_STEP_16


# ----------------------------------------------------------------------------- slow answers


@pytest.mark.parametrize(
    "prefix",
    [b"HTTP/1.1 200 OK\r\nX-Padding: ", head(10_000)],
    ids=["headers", "body"],
)
def test_trickling_server_meets_the_deadline(raw, image, prefix):
    # a byte every 0.05 s: each read is well within timeout=2, but the answer never ends
    server = raw([trickle(prefix)])
    with pytest.raises(RuntimeError) as info:
        load_target(f"{server.url}#timeout=2,deadline=0.5,retries=1,backoff=0")(image)
    expired = (
        "TimeoutError: no complete answer within deadline=0.5 s "
        "(one attempt, from connecting to the answer's last byte)"
    )
    assert str(info.value) == _failure(server, 2, expired)
    assert server.connections == 2


def test_deadline_defaults_to_three_timeouts_and_is_checked():
    assert open_target("http://127.0.0.1:1/", timeout=7).deadline == 21
    assert load_target("http://127.0.0.1:1/#deadline=2.5").model.deadline == 2.5
    for options, message in [
        ({"deadline": 0}, "deadline is 0; expected seconds > 0 (unset: 3 * timeout)"),
        ({"deadline": "soon"}, "deadline is 'soon'; expected seconds > 0 (unset: 3 * timeout)"),
        ({"max_response": 0}, "max_response is 0; expected a byte count > 0"),
        ({"max_response": 1.5}, "max_response is 1.5; expected a byte count > 0"),
    ]:
        with pytest.raises(ValueError) as info:
            open_target("http://127.0.0.1:1/", **options)
        assert str(info.value) == f"web target 'http://127.0.0.1:1/': {message}"


# ----------------------------------------------------------------------------- large answers


def test_oversized_content_length_is_refused_before_reading(raw, image):
    def announce_2_gib(conn: socket.socket, body: bytes) -> None:
        conn.sendall(head(2**31) + bytes(100))
        wait_for_close(conn)  # reading on would time out instead

    server = raw([announce_2_gib])
    with pytest.raises(ValueError) as info:
        load_target(f"{server.url}#timeout=2,retries=2")(image)  # default max_response 1 GiB
    assert str(info.value) == (
        f"{server.url} announced a 2,147,483,648-byte answer (Content-Length); "
        "max_response is 1,073,741,824 bytes"
    )
    assert server.connections == 1  # not retried


@pytest.mark.parametrize("chunked", [False, True], ids=["until-close", "chunked"])
def test_answer_without_length_is_cut_at_max_response(raw, image, chunked):
    def endless(conn: socket.socket, body: bytes) -> None:
        extra = "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
        conn.sendall(head(None, extra))
        for _ in range(30):  # 300 kB, then silence: reading it all would time out
            conn.sendall(b"2710\r\n" + bytes(10_000) + b"\r\n" if chunked else bytes(10_000))
        wait_for_close(conn)

    server = raw([endless])
    with pytest.raises(ValueError) as info:
        load_target(f"{server.url}#timeout=2,retries=2,max_response=100000")(image)
    assert str(info.value) == (
        f"{server.url} sent an answer longer than max_response (100,000 bytes); stopped reading it"
    )
    assert server.connections == 1


def test_answer_within_max_response_is_used(raw, image):
    server = raw([inverted])
    out = load_target(f"{server.url}#max_response=5000")(image)  # a 9x7 16-bit PNG: < 1 kB
    assert np.abs(out - (1 - quantize(image, 16) / 65535)).max() <= HALF_STEP_16


# ----------------------------------------------------------------------------- wrong images


@pytest.mark.parametrize("size", [(5, 7), (8, 12), (2, 2)])
def test_answer_of_the_wrong_size_is_an_error(fake, size):
    server = fake([(200, "image/png", encode_image(np.zeros((*size, 3), np.float32)))])
    spec = f"{server.url}#retries=2"
    with pytest.raises(ValueError) as info:
        load_target(spec)(np.zeros((4, 4, 3), np.float32))
    assert str(info.value) == (
        f"{spec} answered a 4x4 image with {size[0]}x{size[1]}; a target's output must be "
        "the input's size or an integer multiple of it"
    )
    assert len(server.requests) == 1


def test_answer_an_integer_multiple_larger_is_accepted(fake):
    answer = np.linspace(0, 1, 8 * 12 * 3, dtype=np.float32).reshape(8, 12, 3)
    server = fake([(200, "image/png", encode_image(answer))])
    out = load_target(server.url)(np.zeros((4, 6, 3), np.float32))  # x2 super-resolution
    assert out.shape == (8, 12, 3)
    assert np.abs(out - answer).max() <= HALF_STEP_16
