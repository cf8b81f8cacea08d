"""``http://HOST:PORT/PATH`` -- a target that is a web API (the protocol of ``onepair serve``).

Each query POSTs the image as a PNG body (``Content-Type: image/png``, 16-bit
by default so nothing is lost; a TIFF for more than 4 channels) and reads an
image back: a PNG, TIFF or JPEG body, recognised by its first bytes. Options
after ``#``::

    http://127.0.0.1:8765/run#timeout=20,retries=3,backoff=0.5,concurrency=2,bit_depth=16

- ``timeout``: seconds each network step may wait (connecting, sending, each
  read; a slow model must send its answer within this after the body arrived).
- ``deadline``: seconds one attempt may take in all, from connecting to the
  answer's last byte; unset (the default) means ``3 * timeout``. Without it a
  server trickling a byte now and then would hold the query forever.
- ``retries``: further attempts after a refused or reset connection (also one
  closed in the middle of the answer), a timeout, a 5xx answer, 408 or 429,
  waiting ``backoff``, ``2*backoff``, ``4*backoff``... seconds before each (or
  the server's ``Retry-After`` when longer), never more than ``timeout``.
- ``concurrency``: requests in flight at once from this target (threads
  sharing it wait for a slot).
- ``bit_depth``: 8 or 16 bits per sample in the PNG sent.
- ``token``: sent as ``Authorization: Bearer TOKEN``; empty means the
  ``ONEPAIR_TOKEN`` environment variable, so the secret can stay out of the
  spec (specs are stored in run folders and reports).
- ``max_response``: the largest answer body in bytes (default 1 GiB). A larger
  ``Content-Length`` is refused before the body is read; a body without one
  is read until it passes the limit, and no further.

A 4xx answer raises ValueError at once quoting the status and the start of
the body; so does an answer that is not an image, or one over
``max_response``. When every attempt failed, RuntimeError names the URL, the
number of attempts and the last failure. A query therefore ends within about
``(retries + 1) * (deadline + timeout)`` seconds, whatever the server does.
Only the standard library speaks HTTP (``http.client``); proxies are not used.
"""

from __future__ import annotations

import http.client
import os
import ssl
import threading
import time
import urllib.parse

import numpy as np

from onepair.codec import decode_image, encode_image
from onepair.images import ImageError, as_image
from onepair.targets.deadline import DeadlineSocket

RETRY_STATUSES = (408, 429)  # and every 5xx
GIB = 2**30


class WebTarget:
    """``target(image) -> image`` over HTTP; see the module docstring for the protocol."""

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        concurrency: int = 4,
        bit_depth: int = 16,
        token: str = "",
        deadline: float | None = None,
        max_response: int = GIB,
    ):
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"web target {url!r}: scheme is {parts.scheme!r}; expected http/https")
        try:
            port = parts.port
        except ValueError as error:
            raise ValueError(f"web target {url!r}: invalid port ({error})") from error
        if not parts.hostname:
            raise ValueError(f"web target {url!r} names no host; expected http://HOST:PORT/PATH")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"web target {url!r} holds credentials in the URL; pass a bearer token with "
                "'#token=...' or the ONEPAIR_TOKEN environment variable instead"
            )
        checks = (
            (timeout > 0, f"timeout is {timeout}; expected seconds > 0"),
            (isinstance(retries, int) and retries >= 0, f"retries is {retries}; expected >= 0"),
            (backoff >= 0, f"backoff is {backoff}; expected seconds >= 0"),
            (
                isinstance(concurrency, int) and concurrency >= 1,
                f"concurrency is {concurrency}; expected an integer >= 1",
            ),
            (bit_depth in (8, 16), f"bit_depth is {bit_depth}; expected 8 or 16"),
            (
                deadline is None or (_is_number(deadline) and deadline > 0),
                f"deadline is {deadline!r}; expected seconds > 0 (unset: 3 * timeout)",
            ),
            (
                _is_number(max_response) and int(max_response) == max_response > 0,
                f"max_response is {max_response!r}; expected a byte count > 0",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"web target {url!r}: {message}")
        self.url = urllib.parse.urlunsplit(parts._replace(fragment=""))
        self.__name__ = self.url
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout, self.retries, self.backoff = float(timeout), retries, float(backoff)
        self.deadline = 3 * self.timeout if deadline is None else float(deadline)
        self.bit_depth, self.max_response = bit_depth, int(max_response)
        self._token = token or os.environ.get("ONEPAIR_TOKEN", "")
        self._slots = threading.BoundedSemaphore(concurrency)

    def __repr__(self) -> str:
        return f"WebTarget({self.url!r})"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = as_image(image, "web target input")
        if image.shape[2] <= 4:
            body, content_type = encode_image(image, "png", self.bit_depth), "image/png"
        else:
            body, content_type = encode_image(image, "tiff", self.bit_depth), "image/tiff"
        headers = {"Content-Type": content_type, "Accept": "image/png, image/tiff"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        attempts = self.retries + 1
        last = ""
        for attempt in range(attempts):
            with self._slots:
                try:
                    status, reason, answer_headers, data = self._post(body, headers)
                except ssl.SSLCertVerificationError as error:
                    raise ValueError(f"{self.url}: TLS certificate rejected: {error}") from error
                except (OSError, http.client.HTTPException) as error:  # refused, reset, timeout
                    last = f"{type(error).__name__}: {error}"
                    wait = self.backoff * 2**attempt
                else:
                    if status == 200:
                        return self._decode(answer_headers, data)
                    if status < 500 and status not in RETRY_STATUSES:
                        raise ValueError(self._refusal(status, reason, answer_headers, data))
                    last = f"status {status} {reason}: {_snippet(data)}"
                    wait = max(self.backoff * 2**attempt, _retry_after(answer_headers))
            if attempt + 1 < attempts:
                time.sleep(min(wait, self.timeout))
        raise RuntimeError(
            f"{self.url}: no usable answer after {attempts} attempt{'s' * (attempts > 1)} "
            f"(retries={self.retries}); last failure: {last}"
        )

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, object, bytes]:
        """One attempt: (status, reason, headers, body), all within ``deadline`` seconds."""
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        ends = time.monotonic() + self.deadline
        connection = kind(self.host, self.port, timeout=min(self.timeout, self.deadline))
        try:
            connection.connect()
            sock = DeadlineSocket(connection.sock, ends, self.timeout, self.deadline)
            connection.sock = sock
            try:
                connection.request("POST", self.path, body, headers)
            except (BrokenPipeError, ConnectionResetError) as error:
                # The server may have answered early (413, 401) and stopped reading: use that.
                try:
                    response = connection.getresponse()
                except (OSError, http.client.HTTPException):
                    raise error from None
            else:
                response = connection.getresponse()
            if sock.ended:  # the header block ended with the connection, not a blank line
                raise http.client.RemoteDisconnected(
                    "the connection closed in the middle of the answer's headers"
                )
            return response.status, response.reason, response.headers, self._read(response)
        finally:
            connection.close()

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        """The answer's body: at most ``max_response`` bytes, all that Content-Length says."""
        declared = response.length
        if declared is not None and declared > self.max_response:
            raise ValueError(
                f"{self.url} announced a {declared:,}-byte answer (Content-Length); "
                f"max_response is {self.max_response:,} bytes"
            )
        parts, size = [], 0
        while chunk := response.read(min(1 << 20, self.max_response + 1)):
            size += len(chunk)
            if size > self.max_response:
                raise ValueError(
                    f"{self.url} sent an answer longer than max_response "
                    f"({self.max_response:,} bytes); stopped reading it"
                )
            parts.append(chunk)
        data = b"".join(parts)
        if response.length:  # the connection closed before Content-Length bytes came
            raise http.client.IncompleteRead(data, response.length)
        return data

    def _refusal(self, status: int, reason: str, headers: object, data: bytes) -> str:
        if 300 <= status < 400:
            where = headers.get("Location", "?")  # type: ignore[attr-defined]
            return f"{self.url} answered {status} {reason}, a redirect to {where}; use that URL"
        return f"{self.url} refused the image: {status} {reason}: {_snippet(data)}"

    def _decode(self, headers: object, data: bytes) -> np.ndarray:
        content_type = headers.get("Content-Type", "none")  # type: ignore[attr-defined]
        try:
            return decode_image(data)[0]
        except ImageError as error:
            raise ValueError(
                f"{self.url} answered 200 but not with an image: {error} "
                f"(content-type {content_type})"
            ) from error


# The adapter table calls ``open_target(location, **options)``; the options are WebTarget's.
open_target = WebTarget


def _snippet(data: bytes, limit: int = 200) -> str:
    """The start of a body for an error message: text if it decodes, else bytes."""
    if not data:
        return "(empty body)"
    head = bytes(data[:limit])
    try:
        text = repr(head.decode("utf-8").strip())
    except UnicodeDecodeError:
        text = repr(head[:48])
    return text + (f" ... ({len(data)} bytes)" if len(data) > limit else "")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _retry_after(headers: object) -> float:
    value = headers.get("Retry-After", "")  # type: ignore[attr-defined]
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0  # an HTTP date, or nothing: use the backoff alone
