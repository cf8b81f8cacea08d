"""`onepair serve` and the http:// target, against real server processes on loopback.

The server processes start once per module, in parallel (each takes a few seconds to
import torch). Misbehaving servers -- failing, refusing, answering HTML -- are small
standard-library servers in a thread of this process.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL
from onepair.codec import decode_image, encode_image
from onepair.images import quantize
from onepair.imitator import Imitator
from onepair.models import build
from onepair.server import create_server
from onepair.targets import load_target
from onepair.targets.web import open_target

HALF_STEP_16 = 0.5 / 65535 + 1e-7  # rounding to 16 bits, plus float32 slack
TOKEN = "s3cret-token"


class Process:
    """A running `onepair serve` process and the URL it announced."""

    def __init__(self, *args: str):
        exe = Path(sys.executable).with_name("onepair")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "onepair.cli"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        env.pop("ONEPAIR_TOKEN", None)
        self.popen = subprocess.Popen(
            [*command, "serve", *args, "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = ""
        self.stderr: list[str] = []
        threading.Thread(target=lambda: self.stderr.extend(self.popen.stderr), daemon=True).start()

    def wait_url(self, seconds: float = 60.0) -> str:
        lines: list[str] = []

        def read() -> None:  # until the line with the URL (a "loading" line may come first)
            for line in self.popen.stdout:
                lines.append(line)
                if "http://" in line:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(seconds)
        match = re.search(r"http://[\d.]+:\d+/", lines[-1] if lines else "")
        if not match:
            self.popen.kill()
            raise AssertionError(f"no URL announced: {lines}; stderr: {''.join(self.stderr)}")
        self.url = match.group(0)
        return self.url

    def finish(self) -> tuple[int, str]:
        """Wait for the process to exit (after a signal): (exit status, rest of stdout)."""
        try:
            status = self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise
        return status, self.popen.stdout.read()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded, random) tiny imitator saved as a run folder: 3 -> 3 channels."""
    torch.manual_seed(0)
    network = build(TINY_MODEL, 3, 3)
    with torch.no_grad():  # make the output visibly different from the input
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return Imitator(network).save(tmp_path_factory.mktemp("run") / "imitator")


@pytest.fixture(scope="module")
def servers(run_folder: Path) -> Iterator[dict[str, Process]]:
    """Two `onepair serve` processes, started together; both must stop cleanly.

    "blur" serves a spec openly; "run" serves a run folder behind a token with a
    small body limit. At the end Ctrl-C stops one and SIGTERM the other: each must
    exit with status 0 and report what it answered.
    """
    procs = {
        "blur": Process("gaussian-blur:sigma=2"),
        "run": Process(str(run_folder), "--max-body", "4000", "--token", TOKEN),
    }
    try:
        for proc in procs.values():
            proc.wait_url()
        yield procs
    finally:
        signals = {"blur": signal.SIGINT, "run": signal.SIGTERM}
        running = {name: proc for name, proc in procs.items() if proc.popen.poll() is None}
        for name, proc in running.items():
            proc.popen.send_signal(signals[name])
        for name, proc in running.items():
            status, out = proc.finish()
            assert status == 0, f"{name} server exited with {status}: {proc.stderr[-5:]}"
            assert re.search(r"stopped after \d+ queries", out), out


def _health(url: str, token: str = "") -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url + "health", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    host, port = re.match(r"http://([\d.]+):(\d+)/", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/", body, headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


# ----------------------------------------------------------------------------- real servers


@pytest.mark.parametrize("channels", [1, 3])
def test_remote_target_equals_local_target(servers, photo, channels):
    image = photo[:, :, :channels]
    remote = load_target(servers["blur"].url + "#backoff=0.01")
    before = _health(servers["blur"].url)
    out = remote(image)
    expected = load_target("gaussian-blur:sigma=2")(image)
    assert out.shape == expected.shape == image.shape
    assert np.abs(out - expected).max() <= HALF_STEP_16  # the photo is exact in 16 bits
    assert np.abs(out - image).max() > 0.05  # and the blur did something
    assert (remote.queries, remote.pixels) == (1, 96 * 80)
    after = _health(servers["blur"].url)
    assert after["what"] == "gaussian-blur:sigma=2"
    assert after["queries"] - before["queries"] == 1
    assert after["pixels"] - before["pixels"] == 96 * 80


def test_8_bit_requests_get_8_bit_answers(servers, photo):
    remote = load_target(servers["blur"].url + "run#bit_depth=8")
    out = remote(photo)
    expected = load_target("gaussian-blur:sigma=2")(quantize(photo, 8))
    assert np.abs(out - expected).max() <= 0.5 / 255 + 1e-6
    assert np.abs(out * 255 - np.round(out * 255)).max() < 1e-4  # on the 8-bit grid


def test_run_folder_serves_the_imitator(servers, run_folder, rng):
    image = rng.random((16, 16, 3), dtype=np.float32)  # ~1.6 kB of PNG: under the 4000 limit
    image = quantize(image, 16) / np.float32(65535)  # exact in 16 bits, as the server sees it
    out = load_target(f"{servers['run'].url}#token={TOKEN}")(image)
    expected = Imitator.load(run_folder, device="cpu").apply(image)
    assert out.shape == expected.shape == image.shape
    assert np.abs(out - expected).max() <= HALF_STEP_16 + 1e-6  # float sums in another process
    assert np.abs(out - image).mean() > 0.01
    health = _health(servers["run"].url, TOKEN)
    assert health["what"] == str(run_folder) and health["pixels"] >= 16 * 16


def test_target_rejecting_the_image_is_422_and_not_retried(servers, rng):
    gray = rng.random((20, 24, 1), dtype=np.float32)  # the imitator expects 3 channels
    with pytest.raises(ValueError, match=r"422 .*expects 3"):
        load_target(f"{servers['run'].url}#token={TOKEN},backoff=5")(gray)  # a retry: 5 s


def test_body_over_max_body_is_413(servers, rng):
    big = rng.random((64, 64, 3), dtype=np.float32)  # ~25 kB of PNG, limit 4000 bytes
    with pytest.raises(ValueError, match=r"413 .*at most 4000"):
        load_target(f"{servers['run'].url}#token={TOKEN},retries=0")(big)


def test_missing_or_wrong_token_is_401(servers, rng, monkeypatch):
    monkeypatch.delenv("ONEPAIR_TOKEN", raising=False)
    small = rng.random((6, 5, 3), dtype=np.float32)
    url = servers["run"].url
    for spec in (url, url + "#token=wrong"):
        with pytest.raises(ValueError, match=r"401 .*token"):
            load_target(spec)(small)
    with pytest.raises(urllib.error.HTTPError, match="401"):
        _health(url)
    monkeypatch.setenv("ONEPAIR_TOKEN", TOKEN)  # the secret can stay out of the spec
    assert load_target(url)(small).shape == small.shape


def test_non_image_body_is_400(servers):
    status, text = _raw_post(servers["blur"].url, b"<html>hi</html>", {"Content-Type": "text/html"})
    assert status == 400
    assert "not a PNG, TIFF or JPEG" in text and "<html>hi" in text and "text/html" in text


def test_missing_content_length_is_411(servers):
    host, port = re.match(r"http://([\d.]+):(\d+)/", servers["blur"].url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/", body=iter([encode_image(np.zeros((4, 4, 1)))]))  # chunked
    assert connection.getresponse().status == 411
    connection.close()


# ----------------------------------------------------------------------------- in-process server


@pytest.fixture
def local_server() -> Iterator:
    """Start ``create_server(target, name, port=0, **limits)`` in a thread; yields a starter."""
    started: list = []

    def start(target, **limits):
        server = create_server(target, "local", port=0, **limits)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        started.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def test_busy_server_answers_503_with_retry_after(local_server):
    release, started = threading.Event(), threading.Event()

    def slow(image):
        started.set()
        release.wait(10)
        return image

    server, url = local_server(slow, concurrency=1, timeout=0.3)
    body = encode_image(np.full((3, 3, 1), 0.5))
    try:
        first = threading.Thread(target=_raw_post, args=(url, body, {}))
        first.start()
        assert started.wait(10)
        connection = http.client.HTTPConnection(*server.server_address, timeout=10)
        connection.request("POST", "/", body)
        response = connection.getresponse()
        assert response.status == 503 and response.getheader("Retry-After") == "1"
        connection.close()
    finally:
        release.set()
    first.join(10)
    assert server.queries == 1


def test_stalled_client_gets_408_and_never_holds_a_slot(local_server, rng):
    server, url = local_server(lambda image: image, concurrency=1, timeout=1.5)
    image = rng.random((5, 7, 3), dtype=np.float32)
    with socket.create_connection(server.server_address, timeout=10) as stalled:
        stalled.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        # while it stalls, the only processing slot is free for others
        assert np.abs(load_target(url)(image) - image).max() <= HALF_STEP_16
        started = time.monotonic()
        reply = stalled.recv(1024)
        assert b" 408 " in reply.split(b"\r\n")[0], reply  # the whole body was due in 1.5 s
        assert time.monotonic() - started < 5
    assert np.abs(load_target(url)(image) - image).max() <= HALF_STEP_16


def test_connections_beyond_the_cap_are_refused_at_once(local_server, rng):
    server, url = local_server(lambda image: image, concurrency=1, timeout=5)
    idle = [socket.create_connection(server.server_address, timeout=10) for _ in range(8)]
    try:
        time.sleep(0.3)  # let the server accept them all
        with socket.create_connection(server.server_address, timeout=10) as extra:
            reply = extra.recv(1024)
        assert reply.startswith(b"HTTP/1.1 503") and b"too many open connections" in reply
    finally:
        for connection in idle:
            connection.close()
    time.sleep(0.3)
    image = rng.random((4, 4, 1), dtype=np.float32)
    assert np.abs(load_target(url)(image) - image).max() <= HALF_STEP_16


def test_image_declaring_too_many_pixels_is_413_before_decoding(local_server):
    from test_images import _png_declaring

    server, url = local_server(lambda image: image, max_pixels=10_000)
    status, text = _raw_post(url, _png_declaring(60_000, 60_000, 16), {})
    assert status == 413 and "declares a 60000x60000 image" in text
    assert server.queries == 0


def test_a_zoo_model_that_cannot_run_fails_before_serving(tmp_path):
    env = {**os.environ, "ONEPAIR_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("onepair")), "serve", "teacher-stain", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert "cannot be served" in done.stderr and "onepair zoo train-teacher stain" in done.stderr


def test_target_failure_is_500_with_its_message_and_retried(local_server, rng):
    def broken(image):
        raise RuntimeError("model crashed on purpose")

    server, url = local_server(broken)
    with pytest.raises(RuntimeError, match=r"2 attempts.*500 .*model crashed on purpose"):
        load_target(f"{url}#retries=1,backoff=0")(rng.random((4, 4, 1)))
    assert server.queries == 2


# ----------------------------------------------------------------------------- fake servers


class Fake:
    """A loopback server answering from a script of (status, content type, body or None).

    None as body means "the request's image, inverted". The last entry repeats.
    """

    def __init__(self, script: list[tuple[int, str, bytes | None]], delay: float = 0.0):
        self.script, self.delay, self.requests = script, delay, []
        # requests being answered (read, not yet replied to) now and at most
        self.in_flight, self.peak, lock = 0, 0, threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append((dict(self.headers), body))
                with lock:
                    fake.in_flight += 1
                    fake.peak = max(fake.peak, fake.in_flight)
                time.sleep(fake.delay)
                with lock:  # before the reply: the client frees its slot only once it has it
                    fake.in_flight -= 1
                status, kind, data = fake.script[min(len(fake.requests), len(fake.script)) - 1]
                if data is None:
                    image, bits = decode_image(body)
                    data = encode_image(1 - image, "png", bits)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/run"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[type[Fake]]:
    made: list[Fake] = []

    def make(*args, **kwargs) -> Fake:
        made.append(Fake(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_retries_on_503_then_succeeds(fake, rng):
    server = fake([(503, "text/plain", b"warming up"), (503, "text/plain", b"warming up"),
                   (200, "image/png", None)])  # fmt: skip
    image = rng.random((11, 13, 3), dtype=np.float32)
    out = load_target(f"{server.url}#retries=2,backoff=0.01,token=abc")(image)
    assert len(server.requests) == 3
    assert np.abs(out - (1 - quantize(image, 16) / 65535)).max() <= HALF_STEP_16
    headers, body = server.requests[-1]
    assert headers["Content-Type"] == "image/png" and headers["Authorization"] == "Bearer abc"
    assert decode_image(body)[1] == 16


def test_503_past_the_last_retry_names_url_attempts_and_failure(fake, rng):
    server = fake([(503, "text/plain", b"still warming up")])
    with pytest.raises(RuntimeError, match=r"127\.0\.0\.1.*3 attempts.*503.*still warming up"):
        load_target(f"{server.url}#retries=2,backoff=0.01")(rng.random((4, 4, 1)))
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "text"), [(404, b"no such model"), (400, b"expected a 512x512 image")]
)
def test_4xx_is_a_clear_error_without_retries(fake, rng, status, text):
    server = fake([(status, "text/plain", text)])
    with pytest.raises(ValueError, match=rf"refused the image: {status} .*{text.decode()}"):
        load_target(f"{server.url}#retries=3,backoff=0.01")(rng.random((4, 4, 1)))
    assert len(server.requests) == 1


def test_html_answer_is_a_clear_non_image_error(fake, rng):
    server = fake([(200, "text/html", b"<!doctype html><title>Login</title>")])
    with pytest.raises(ValueError, match=r"not with an image.*doctype html.*text/html"):
        load_target(server.url)(rng.random((4, 4, 3)))
    assert len(server.requests) == 1


def test_timeouts_are_retried_then_reported(fake, rng):
    server = fake([(200, "image/png", None)], delay=0.5)
    with pytest.raises(RuntimeError, match=r"2 attempts.*timed out"):
        load_target(f"{server.url}#timeout=0.1,retries=1,backoff=0")(rng.random((4, 4, 1)))
    assert len(server.requests) == 2


def test_refused_connection_is_retried_then_reported(rng):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/run"
    with pytest.raises(RuntimeError, match=rf"{re.escape(url)}.*4 attempts.*ConnectionRefused"):
        load_target(f"{url}#retries=3,backoff=0.01")(rng.random((4, 4, 1)))


def test_concurrency_caps_requests_in_flight(fake, rng):
    # counted from a request's arrival to its reply: a handler still finishing after the
    # reply (as the client already sends the next) is not in flight
    server = fake([(200, "image/png", None)], delay=0.1)
    target = load_target(f"{server.url}#concurrency=2")
    image = rng.random((4, 4, 1), dtype=np.float32)
    threads = [threading.Thread(target=target, args=(image,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(server.requests) == 6 and server.peak == 2


def test_url_and_options_are_checked_at_open_time():
    for url, message in [
        ("ftp://host/x", "scheme"),
        ("http:///run", "no host"),
        ("http://host:99999/", "port"),
        ("http://user:pw@host/", "credentials"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_target(url)
    with pytest.raises(ValueError, match="bit_depth"):
        open_target("http://127.0.0.1:1/", bit_depth=12)
    with pytest.raises(ValueError, match="unknown parameter 'colour'.*retries"):
        load_target("http://127.0.0.1:1/#colour=red")


def test_serve_returns_only_after_the_thread_that_stopped_it(monkeypatch):
    """The signal handler stops the server from a thread; serve() joins it before
    returning. Left running, that thread could drop the last reference to the server
    (and a model's tensors) while the interpreter exits, which aborted the process. Here
    the stopping thread lingers after the shutdown: serve() must wait for it."""
    from onepair import server as server_module
    from onepair.serve import serve

    finished = threading.Event()
    shutdown = server_module.Server.shutdown

    def lingering(self) -> None:
        shutdown(self)
        time.sleep(0.5)
        finished.set()

    monkeypatch.setattr(server_module.Server, "shutdown", lingering)
    lines: list[str] = []
    default = signal.getsignal(signal.SIGTERM)

    def terminate() -> None:  # as SIGTERM from outside, once serve() handles it (never before)
        deadline = time.monotonic() + 60
        while signal.getsignal(signal.SIGTERM) == default and time.monotonic() < deadline:
            time.sleep(0.01)
        if signal.getsignal(signal.SIGTERM) != default:
            os.kill(os.getpid(), signal.SIGTERM)

    def announce(line: str) -> None:
        lines.append(line)
        if "serving" in line:
            threading.Thread(target=terminate, daemon=True).start()

    serve("gaussian-blur:sigma=2", port=0, announce=announce)
    assert finished.is_set(), "serve() returned while the thread stopping it still ran"
    assert re.search(r"stopped after 0 queries", lines[-1]), lines
