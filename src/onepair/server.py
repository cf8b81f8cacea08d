"""The HTTP server behind ``onepair serve`` (:mod:`onepair.serve` documents its API).

:class:`Server` holds one target, its limits and its query counts; :class:`Handler`
answers one connection: it reads the whole body within the client timeout before
taking one of the processing slots, decodes the image, runs the target and sends
the output (or a one-line plain-text error). Standard library only.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from onepair.codec import decode_image, encode_image
from onepair.images import ImageError, shape_str

POST_PATHS = ("/", "/run")
# The defaults of a server's address and limits, for ``create_server``, ``serve`` and
# ``onepair serve`` alike.
HOST, PORT = "127.0.0.1", 8765
MAX_BODY = 64 * 2**20  # bytes of one request's body
MAX_PIXELS = 64 * 2**20  # H x W of one image
CONCURRENCY = 4  # requests processed at once
TIMEOUT = 30.0  # seconds a client may take to send, and a request may wait for a slot


def create_server(
    target: Callable[[np.ndarray], np.ndarray],
    name: str,
    host: str = HOST,
    port: int = PORT,
    max_body: int = MAX_BODY,
    concurrency: int = CONCURRENCY,
    timeout: float = TIMEOUT,
    token: str | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Server:
    """A bound (not yet serving) :class:`Server`; call ``serve_forever()`` on it."""
    if max_body < 1 or concurrency < 1 or timeout <= 0 or max_pixels < 1:
        raise ValueError(
            f"max_body={max_body}, concurrency={concurrency}, timeout={timeout}, "
            f"max_pixels={max_pixels}; expected all > 0"
        )
    return Server(
        (host, port), target, name, max_body, concurrency, timeout, token or None, max_pixels
    )


class Server(ThreadingHTTPServer):
    """A threading HTTP server holding one target, its limits and its query counts."""

    daemon_threads = True
    # The listen backlog. socketserver's default, 5, overflows when a dozen clients connect
    # at once: the kernel drops their SYNs and each waits a 1 s retransmit (or 3 s) to connect.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        target: Callable[[np.ndarray], np.ndarray],
        name: str,
        max_body: int,
        concurrency: int,
        timeout: float,
        token: str | None,
        max_pixels: int = MAX_PIXELS,
    ):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)
        self.target, self.name, self.token = target, name, token
        self.max_body, self.client_timeout, self.max_pixels = max_body, timeout, max_pixels
        self.slots = threading.BoundedSemaphore(concurrency)
        self.connections = threading.BoundedSemaphore(4 * concurrency + 4)
        self.lock = threading.Lock()
        self.busy = threading.Condition(self.lock)
        self.queries = self.pixels = self.in_flight = 0

    def process_request(self, request: socket.socket, client_address: object) -> None:
        """Refuse a connection beyond the cap at once (no thread, no body read)."""
        if not self.connections.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                    b"Content-Type: text/plain\r\nContent-Length: 26\r\n"
                    b"Connection: close\r\n\r\ntoo many open connections\n"
                )
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: socket.socket, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def run(self, image: np.ndarray) -> np.ndarray:
        """Call the target, counting the query."""
        with self.lock:
            self.queries += 1
            self.pixels += image.shape[0] * image.shape[1]
        return self.target(image)

    def working(self, delta: int) -> None:
        """Count a request as in flight from its body read to its last byte sent."""
        with self.lock:
            self.in_flight += delta
            self.busy.notify_all()

    def wait_idle(self, timeout: float) -> None:
        """Let images being processed finish (at most ``timeout`` seconds)."""
        with self.busy:
            self.busy.wait_for(lambda: self.in_flight == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "onepair"

    def setup(self) -> None:
        self.timeout = self.server.client_timeout  # socket timeout for slow clients
        super().setup()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if not self._authorized():
            return
        if path == "/health":
            with self.server.lock:
                health = {
                    "what": self.server.name,
                    "queries": self.server.queries,
                    "pixels": self.server.pixels,
                }
            self._send(200, json.dumps(health).encode(), "application/json")
        elif path in POST_PATHS:
            self._text(200, f"onepair serving {self.server.name}: POST a PNG here; GET /health")
        else:
            self._text(404, f"no {path}; POST an image to / or /run, GET /health")

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        if path not in POST_PATHS:
            self._text(404, f"no {path}; POST an image to / or /run")
            return
        if not self._authorized():
            return
        length = self.headers.get("Content-Length")
        if length is None or self.headers.get("Transfer-Encoding"):
            self._text(411, "Content-Length is required (chunked bodies are not accepted)")
            return
        try:
            size = int(length)
            if size < 0:
                raise ValueError
        except ValueError:
            self._text(400, f"Content-Length is {length!r}; expected a byte count")
            return
        if size > self.server.max_body:
            self._text(
                413, f"body is {size} bytes; this server accepts at most {self.server.max_body}"
            )
            return
        body = self._read_body(size)  # before taking a slot: slow clients hold none
        if body is None:
            return
        self.server.working(+1)
        try:
            if not self.server.slots.acquire(timeout=self.server.client_timeout):
                self._text(503, "busy: all processing slots stayed taken; retry later", retry=1)
                return
            try:
                self._answer(body)
            finally:
                self.server.slots.release()
        finally:
            self.server.working(-1)

    def _read_body(self, size: int) -> bytes | None:
        """The whole body within ``timeout`` seconds in all, or None (answered 408 or gone)."""
        deadline = time.monotonic() + self.server.client_timeout
        parts, left = [], size
        try:
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._text(
                        408, f"the body did not arrive within {self.server.client_timeout:g} s"
                    )
                    return None
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(left, 1 << 20))
                if not chunk:
                    self.close_connection = True
                    return None
                parts.append(chunk)
                left -= len(chunk)
        except TimeoutError:
            self._text(408, f"the body did not arrive within {self.server.client_timeout:g} s")
            return None
        except OSError:  # the client went away
            self.close_connection = True
            return None
        self.connection.settimeout(self.server.client_timeout)
        return b"".join(parts)

    def _answer(self, body: bytes) -> None:
        try:
            image, bits = decode_image(body, "request body", self.server.max_pixels)
        except ImageError as error:
            if "over the limit" in str(error):
                self._text(413, f"{error}; this server takes at most {self.server.max_pixels:,}")
                return
            kind = self.headers.get("Content-Type", "none")
            self._text(400, f"{error} (content-type {kind}); expected a PNG or TIFF image")
            return
        try:
            output = self.server.run(image)
        except ValueError as error:  # the target says this image is wrong for it
            self._text(422, f"{self.server.name} rejected a {shape_str(image)} image: {error}")
            return
        except Exception as error:  # report any failure of the model to the client
            self._text(500, f"{self.server.name} failed: {type(error).__name__}: {error}")
            return
        try:
            bits = 16 if bits > 8 else 8
            if output.ndim == 3 and output.shape[2] > 4:
                data, kind = encode_image(output, "tiff", bits), "image/tiff"
            else:
                data, kind = encode_image(output, "png", bits), "image/png"
        except (ValueError, TypeError) as error:
            self._text(500, f"{self.server.name} returned an unusable image: {error}")
            return
        self._send(200, data, kind)

    def _authorized(self) -> bool:
        expected = self.server.token
        if expected is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return True
        self._text(401, "missing or wrong token; send 'Authorization: Bearer TOKEN'")
        return False

    def _text(self, status: int, message: str, retry: int | None = None) -> None:
        extra = {"Retry-After": str(retry)} if retry is not None else {}
        if status == 401:
            extra["WWW-Authenticate"] = "Bearer"
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8", extra)
        if status >= 400 and self.command == "POST":
            self._linger()

    def _send(self, status: int, data: bytes, kind: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _linger(self, seconds: float = 2.0) -> None:
        """Close after an early answer without resetting the connection under the client.

        Closing a socket with an unread body sends a reset that can destroy the
        answer before the client reads it; so stop writing, and read (and drop)
        what the client still sends until it closes, for at most ``seconds``.
        """
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                self.connection.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.connection.recv(1 << 16):
                    break
        except OSError:
            pass
