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
study, not part of the black box. Standard library only (``http.server``, in
:mod:`onepair.server`).
"""

from __future__ import annotations

import ipaddress
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from onepair.server import CONCURRENCY, HOST, MAX_BODY, MAX_PIXELS, PORT, TIMEOUT, create_server


def serve(
    what: str,
    host: str = HOST,
    port: int = PORT,
    max_body: int = MAX_BODY,
    concurrency: int = CONCURRENCY,
    timeout: float = TIMEOUT,
    token: str | None = None,
    announce: Callable[[str], None] = print,
    max_pixels: int = MAX_PIXELS,
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

    stoppers: list[threading.Thread] = []

    def stop(signum: int, frame: object) -> None:  # shutdown() waits for serve_forever to end
        stoppers.append(threading.Thread(target=server.shutdown, daemon=True))
        stoppers[-1].start()

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
        # Joined here, so that no stopping thread drops the last reference to the server
        # (and with it the model's tensors) while the interpreter exits: a daemon thread
        # freeing a tensor then is stopped inside torch's C++ code, and the process aborts.
        for thread in stoppers:
            thread.join()
        announce(f"stopped after {server.queries} queries ({server.pixels} pixels)")


def resolve(what: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """(callable, name) for a target spec or an imitator run folder (a folder with config.json)."""
    path = Path(what)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is a folder but not a run folder: it has no config.json")
        from onepair.imitator import Imitator

        imitator = Imitator.load(path)

        def answer(image: np.ndarray) -> np.ndarray:
            # a served model answers the same on every machine, as a `run:` target does:
            # float32, not the bfloat16 apply computes in where a CPU has bfloat16 units
            return imitator.apply(image, precision="float32")

        return answer, str(path)
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
