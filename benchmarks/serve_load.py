"""Throughput and latency of ``onepair serve`` under concurrent clients, on loopback.

For each ``--concurrency`` asked, starts ``onepair serve TARGET --concurrency C``
as its own process; then ``--clients`` threads of this process (each its own
``http://`` target) send ``--requests`` images each, one after another, all
starting together. Every image is unique to its (client, request) and every
answer is checked against the local target's answer to that same image; a
wrong or missing answer makes the exit status 1. Latencies include the
target's retries (a 503 answer and its Retry-After wait). The clients run on
the same machine as the server and share its cores.

    python benchmarks/serve_load.py --clients 16 --requests 50 --size 128 \\
        --target gaussian-blur:sigma=2 --concurrency 4 -o bench-out
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import machine, machine_line, table, write_record  # noqa: E402
from onepair.targets import load_target  # noqa: E402
from test_serve import Process  # noqa: E402
from test_serve_load import drive, request_image  # noqa: E402

COLUMNS = [
    "concurrency",
    "clients",
    "requests",
    "image",
    "seconds",
    "requests_per_s",
    "mpix_per_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "status_200",
    "status_503",
    "wrong",
]


def measure(args: argparse.Namespace, concurrency: int) -> dict:
    """One server process at ``concurrency``, loaded by ``args.clients`` clients."""
    size = (args.size, args.size, args.channels)
    server = Process(args.target, "--concurrency", str(concurrency), "--timeout", str(args.timeout))
    url = server.wait_url(120)
    try:
        spec = f"{url}#retries={args.retries},timeout={args.timeout}"
        load_target(spec)(request_image(10**6, 0, size))  # a first query outside the timing
        load = drive(spec, args.clients, args.requests, size)
    finally:
        server.popen.send_signal(signal.SIGINT)
        server.finish()
    wrong = load.wrong(load_target(args.target)) + load.errors
    for line in wrong[:5]:
        print(f"wrong: {line}", file=sys.stderr)
    stats = load.stats()
    return {
        "concurrency": concurrency,
        "clients": args.clients,
        "image": "x".join(map(str, size)),
        **stats,
        "status_503": stats.get("status_503", 0),
        "wrong": len(wrong),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="gaussian-blur:sigma=2", help="spec to serve")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--size", type=int, default=128, help="image height = width")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4], help="server slots")
    parser.add_argument("--timeout", type=float, default=30.0, help="server and client timeout")
    parser.add_argument("--retries", type=int, default=5, help="client retries")
    parser.add_argument("-o", "--out-dir", default="bench-out")
    args = parser.parse_args(argv)

    rows = [measure(args, concurrency) for concurrency in args.concurrency]
    info = machine()
    record = {
        "benchmark": "serve_load",
        "machine": info,
        "settings": {**vars(args), "server_omp_threads": 1},
        "rows": rows,
    }
    path = write_record(args.out_dir, "serve_load", record)
    print(f"onepair serve {args.target} under load; {machine_line(info)}")
    print(table(rows, COLUMNS))
    print(f"written: {path}")
    return 1 if any(row["wrong"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
