"""`onepair serve` under load: many clients at once against real server processes.

Each client is its own http:// target in its own thread and sends, one after
another, images unique to (client, request); every answer must be the answer
to its own request (none lost, duplicated or swapped), and the server must
count exactly one query per request. Over the limits (more clients than
processing slots for longer than ``--timeout``; more connections than
``4 * concurrency + 4``) the server answers 503 with Retry-After and the
target's retries must still bring every answer. Throughput and latency are
printed (``pytest -s``), never asserted; ``benchmarks/serve_load.py`` is the
longer, configurable run.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from onepair.images import quantize
from onepair.server import create_server
from onepair.targets import load_target
from test_serve import HALF_STEP_16, Process, _health

BLUR = "gaussian-blur:sigma=1"
SLOW_SECONDS = 0.1


def slow_echo(image: np.ndarray, seconds: float = SLOW_SECONDS) -> np.ndarray:
    """The image itself after ``seconds``: served as ``py:test_serve_load:slow_echo``."""
    time.sleep(seconds)
    return image


def request_image(client: int, request: int, size: tuple[int, int, int]) -> np.ndarray:
    """An image unique to (client, request), exact in 16 bits: seeded noise whose first
    pixel holds the two numbers (client / 1000, request / 1000 in channels 0 and 1)."""
    image = np.random.default_rng([client, request]).random(size, dtype=np.float32)
    image[0, 0, 0] = client / 1000
    image[0, 0, min(1, size[2] - 1)] = request / 1000
    return (quantize(image, 16) / np.float32(65535)).astype(np.float32)


@dataclass
class Load:
    """What a run of :func:`drive` sent, got back, and how long each request took."""

    sent: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    got: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, retries included
    # (status, Retry-After) per attempt, or (error type, message) for one without an answer
    statuses: list[tuple[int | str, str | None]] = field(default_factory=list)
    seconds: float = 0.0

    def wrong(self, reference: Callable[[np.ndarray], np.ndarray]) -> list[str]:
        """Requests whose answer is missing or is not ``reference`` of their own image."""
        bad = [f"{key}: no answer" for key in self.sent if key not in self.got]
        for key, out in sorted(self.got.items()):
            expected = reference(self.sent[key])
            if out.shape != expected.shape or np.abs(out - expected).max() > HALF_STEP_16:
                bad.append(f"{key}: answer differs from its own request's")
        return bad

    def stats(self) -> dict[str, float]:
        """Throughput (requests/s, megapixels/s) and latency percentiles (ms)."""
        pixels = sum(image.shape[0] * image.shape[1] for image in self.sent.values())
        ms = np.array(self.latencies or [np.nan]) * 1000
        return {
            "requests": len(self.got),
            "seconds": self.seconds,
            "requests_per_s": len(self.got) / self.seconds,
            "mpix_per_s": pixels / 1e6 / self.seconds,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
            **{f"status_{s}": n for s, n in sorted(Counter(s for s, _ in self.statuses).items())},
        }


def drive(
    spec: str, clients: int, requests: int, size: tuple[int, int, int], load: Load | None = None
) -> Load:
    """``clients`` threads, each with its own target for ``spec``, send ``requests`` images
    of ``size`` (H, W, C) one after another, all starting together; every HTTP answer's
    status is recorded. ``load`` (filled as answers come) lets another thread watch."""
    load, lock = load or Load(), threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        target = load_target(spec)
        web, post = target.model, target.model._post

        def recording(*args):  # one attempt: keep its status and Retry-After, or its error
            try:
                answer = post(*args)
            except Exception as error:
                with lock:
                    load.statuses.append((type(error).__name__, str(error)))
                raise
            with lock:
                load.statuses.append((answer[0], answer[2].get("Retry-After")))
            return answer

        web._post = recording
        start.wait()
        for request in range(requests):
            image = request_image(number, request, size)
            began = time.perf_counter()
            try:
                out = target(image)
            except (ValueError, RuntimeError) as error:
                with lock:
                    load.errors.append(f"client {number} request {request}: {error}")
                continue
            with lock:
                load.latencies.append(time.perf_counter() - began)
                load.sent[number, request], load.got[number, request] = image, out

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - began
    return load


def report(name: str, load: Load) -> str:
    s = load.stats()
    codes = ", ".join(f"{k[7:]}: {v}" for k, v in s.items() if k.startswith("status_"))
    return (
        f"{name}: {s['requests']} requests in {s['seconds']:.2f} s = "
        f"{s['requests_per_s']:.1f} requests/s, {s['mpix_per_s']:.3f} Mpx/s; latency p50 "
        f"{s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms; statuses {codes}"
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Process]]:
    """A blur with 4 processing slots, and a slow echo with 1 slot and a 0.4 s timeout."""
    tests = str(Path(__file__).parent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.getenv("PYTHONPATH")])))
        procs = {
            "blur": Process(BLUR, "--concurrency", "4"),
            "slow": Process(
                "py:test_serve_load:slow_echo", "--concurrency", "1", "--timeout", "0.4"
            ),
        }
    try:
        for proc in procs.values():
            proc.wait_url()
        yield procs
    finally:  # after the load, each must still stop cleanly on Ctrl-C
        running = [proc for proc in procs.values() if proc.popen.poll() is None]
        for proc in running:
            proc.popen.send_signal(signal.SIGINT)
        for proc in running:
            status, out = proc.finish()
            assert status == 0 and "stopped after" in out, (status, out, proc.stderr[-5:])


def test_every_client_gets_the_answer_to_its_own_requests(servers):
    url = servers["blur"].url
    before = _health(url)
    load = drive(url + "#retries=0", clients=8, requests=10, size=(24, 20, 3))
    print("\n" + report("8 clients x 10 requests, 24x20 RGB, concurrency 4", load))
    assert load.errors == []
    assert load.wrong(load_target(BLUR)) == []
    assert [s for s, _ in load.statuses] == [200] * 80
    after = _health(url)
    assert after["queries"] - before["queries"] == 80  # no request lost or run twice
    assert after["pixels"] - before["pixels"] == 80 * 24 * 20


def test_more_clients_than_slots_get_503_with_retry_after_then_answers(servers):
    # 8 clients, 1 slot, 0.1 s per image: the queue is ~0.8 s deep, over the 0.4 s timeout
    url = servers["slow"].url
    before = _health(url)
    load = drive(url + "#retries=8,backoff=0.01", clients=8, requests=2, size=(12, 10, 3))
    print("\n" + report("8 clients x 2 requests, 1 slot of 0.1 s, timeout 0.4 s", load))
    assert load.errors == []
    assert load.wrong(lambda image: image) == []
    codes = Counter(status for status, _ in load.statuses)
    assert set(codes) == {200, 503} and codes[200] == 16
    assert {retry for status, retry in load.statuses if status == 503} == {"1"}
    assert _health(url)["queries"] - before["queries"] == 16  # a 503 never ran the model


def test_connections_over_the_cap_get_503_with_retry_after_then_answers(servers):
    url = servers["blur"].url
    address = ("127.0.0.1", int(url.rstrip("/").rsplit(":", 1)[1]))
    before = _health(url)
    idle = [socket.create_connection(address, timeout=10) for _ in range(4 * 4 + 4)]
    try:
        assert _refused(address), "the server never reached its connection cap"
        load = Load()
        clients = threading.Thread(
            target=drive,
            args=(url + "#retries=3,backoff=0.01", 4, 2, (16, 16, 3), load),
        )
        clients.start()
        deadline = time.monotonic() + 20
        while sum(s == 503 for s, _ in load.statuses) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)  # until every client's first attempt was refused
    finally:
        for connection in idle:
            connection.close()
    clients.join(60)
    print("\n" + report("4 clients x 2 requests over a full connection cap", load))
    assert load.errors == []
    assert load.wrong(load_target(BLUR)) == []
    codes = Counter(status for status, _ in load.statuses)
    assert codes[503] >= 4 and codes[200] == 8 and set(codes) == {200, 503}
    assert {retry for status, retry in load.statuses if status == 503} == {"1"}
    assert _health(url)["queries"] - before["queries"] == 8


def _refused(address: tuple[str, int]) -> bool:
    """Whether a new connection is refused at once with 503 (polling for up to 10 s)."""
    for _ in range(50):
        with socket.create_connection(address, timeout=10) as probe:
            probe.settimeout(0.2)
            try:
                if probe.recv(64).startswith(b"HTTP/1.1 503"):
                    return True
            except TimeoutError:
                pass  # accepted under the cap: not all idle connections are in yet
    return False


def test_a_burst_of_connections_waits_in_the_listen_backlog():
    # Nobody accepts here: every connection must still complete its handshake in the
    # kernel's queue, as a burst of clients does while the server is busy starting threads.
    # (With socketserver's backlog of 5 the 7th SYN is dropped and its connect times out.)
    server = create_server(lambda image: image, "echo", port=0)
    connections = []
    try:
        for _ in range(40):
            connections.append(socket.create_connection(server.server_address, timeout=0.5))
    finally:
        for connection in connections:
            connection.close()
        server.server_close()
    assert len(connections) == 40
