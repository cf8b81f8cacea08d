"""``onepair serve``: a target or a trained imitator as a small HTTP API.

The API is the one the ``http://`` target speaks (:mod:`onepair.targets.web`),
so anything onepair can query locally can be queried over a network, and an
imitator can stand in for the model it copies::

    POST /  or  /run   body: a PNG (8/16-bit), TIFF or JPEG image
        200  the output as a PNG of the request's bit depth (16-bit for float
             TIFF; a TIFF when it has more than 4 channels)
        400  the body is not a readable image        401  missing or wrong bearer token
        408  the body did not arrive within `timeout` s
        411  no Content-Length                       413  body larger than max_body, or
                                                          an image over max_pixels
        422  the target rejected the image (a ValueError, e.g. wrong channel count)
        500  the target failed otherwise             503  busy for `timeout` s (Retry-After),
                                                          or too many open connections
    GET /health   200 {"what": ..., "queries": n, "pixels": n}

Limits: a request's whole body must arrive within ``timeout`` seconds and is
read before a processing slot is taken (a slow client holds no slot); at
most ``4 * concurrency + 4`` connections are open at once; an image's
declared size is checked against ``max_pixels`` before it is decoded. A
local target (a zoo model, a run folder) is run once on a small image at
start, so a missing file or an untrained teacher fails before serving and
slow models (MAXIM) are loaded before the first client waits.

Error bodies are one line of plain text. Only the model part of a spec runs:
degradations in front of it (``noise:sigma=25|...``) make the *input* of a
study, not part of the black box. Standard library only (``http.server``).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from onepair.images import ImageError, decode_image, encode_image, shape_str

POST_PATHS = ("/", "/run")


def serve(
    what: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body: int = 64 * 2**20,
    concurrency: int = 4,
    timeout: float = 30.0,
    token: str | None = None,
    announce: Callable[[str], None] = print,
    max_pixels: int = 64 * 2**20,
) -> None:
    """Serve ``what`` (a target spec or an imitator run folder) until SIGINT or SIGTERM.

    ``port=0`` picks a free port; ``announce`` gets one line with the actual
    URL (and a warning when the address is reachable from other machines).
    ``timeout`` is how long a client may pause while sending and how long a
    request waits for one of the ``concurrency`` processing slots.

    >>> serve("gaussian-blur:sigma=2", port=0)  # doctest: +SKIP
    serving gaussian-blur:sigma=2 on http://127.0.0.1:40123/ (POST a PNG; GET /health)
    """
    target, name = resolve(what)
    if _is_local(what):
        announce(f"loading {name} ...")
        warm_up(target, name)
    server = create_server(
        target, name, host, port, max_body, concurrency, timeout, token, max_pixels
    )
    bound, actual_port = server.server_address[:2]
    shown = f"[{bound}]" if ":" in str(bound) else bound
    announce(f"serving {name} on http://{shown}:{actual_port}/ (POST a PNG; GET /health)")
    if not ipaddress.ip_address(bound).is_loopback:
        announce(
            f"warning: {bound} is reachable from other machines: anyone who can connect can "
            f"query this model{'' if token else '; set --token to require a bearer token'}"
        )

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        server.server_close()
        server.wait_idle(timeout)
        announce(f"stopped after {server.queries} queries ({server.pixels} pixels)")


def resolve(what: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """(callable, name) for a target spec or an imitator run folder (a folder with config.json)."""
    path = Path(what)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is a folder but not a run folder: it has no config.json")
        from onepair.imitator import Imitator

        return Imitator.load(path).apply, str(path)
    if "/" in what and ":" not in what:
        raise ValueError(f"{what}: no such run folder (and not a target spec)")
    from onepair.targets import load_target

    target = load_target(what)
    return target.model, target.spec


def _is_local(what: str) -> bool:
    """A run folder or a zoo model (not a program, web API or precomputed folder)."""
    kind = what.split("|")[-1].partition(":")[0].strip().lower()
    return kind not in ("cmd", "http", "https", "pairs", "py")


def warm_up(target: Callable[[np.ndarray], np.ndarray], name: str) -> None:
    """Run ``target`` on a small image (RGB, else gray) so it loads, or fails, now."""
    errors = []
    for channels in (3, 1):
        try:
            target(np.full((64, 64, channels), 0.5, np.float32))
            return
        except ValueError as error:
            errors.append(f"{channels} channel(s): {error}")
    raise ValueError(f"{name} cannot be served: it fails on a test image: {'; '.join(errors)}")


def create_server(
    target: Callable[[np.ndarray], np.ndarray],
    name: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body: int = 64 * 2**20,
    concurrency: int = 4,
    timeout: float = 30.0,
    token: str | None = None,
    max_pixels: int = 64 * 2**20,
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
        max_pixels: int = 64 * 2**20,
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
