"""The speed-ups of issue 7 one at a time, each against its own baseline in this run.

- training step of the default U-Net: contiguous vs channels-last, 1 vs 2 threads;
- the linear path (15 x 15, 3 -> 3) on one tile: direct convolution (contiguous and
  channels-last) vs the FFT, at an awkward and a 2-3-5-smooth FFT size;
- ``torch.compile`` of the training step: compile time and the step after it;
- bfloat16 (autocast) against float32 for the body of each of ``--presets``: on one
  544 x 544 tile, as apply runs it, and in a training step (AMX CPUs run bfloat16
  convolutions on their matrix units; elsewhere bfloat16 is slower).

    python benchmarks/speed_steps.py -o bench-out
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from common import machine, machine_line, table, write_record
from onepair.models import UNetConfig, build
from onepair.models.linear import LinearFilter
from onepair.presets import PRESETS


def timed(function, repeats: int) -> float:
    """Best milliseconds of ``repeats`` calls after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def train_step(channels_last: bool, batch: int, crop: int):
    network = build(UNetConfig(), 3, 3)
    if not channels_last:
        network = network.to(memory_format=torch.contiguous_format)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(batch, 3, crop, crop).contiguous(memory_format=fmt)
    y = torch.rand(batch, 3, crop, crop).contiguous(memory_format=fmt)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.mse_loss(network.residual(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return network, step


def preset_step(name: str, dtype: torch.dtype):
    """A training step of preset ``name``'s network on its batch of crops, the body
    autocast to ``dtype`` (float32: no autocast)."""
    model, config = PRESETS[name]
    network = build(model, 3, 3)
    shape = (config.batch_size, 3, config.crop, config.crop)
    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    y = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    half = dtype != torch.float32

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype, enabled=half):
            residual = network.residual(x)
        loss = F.mse_loss(residual.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["default", "deep", "first-default"],
        help="networks timed in float32 and bfloat16",
    )
    parser.add_argument("-o", "--out", default="bench-out", help="folder for speed_steps.json")
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)
    rows = []

    def add(case: str, variant: str, ms: float, baseline: float | None = None) -> None:
        ratio = baseline / ms if baseline else None
        rows.append({"case": case, "variant": variant, "ms": ms, "speed_up": ratio})
        print(f"{case}: {variant} {ms:.1f} ms" + (f" (x{ratio:.2f})" if ratio else ""), flush=True)

    threads = torch.get_num_threads()
    for batch in (4, 16):
        case = f"train step, default U-Net, batch {batch} x 64^2"
        base = timed(train_step(False, batch, 64)[1], args.repeats)
        add(case, "contiguous", base)
        add(case, "channels-last", timed(train_step(True, batch, 64)[1], args.repeats), base)
        if threads > 1:
            torch.set_num_threads(1)
            add(
                case,
                "channels-last, 1 thread",
                timed(train_step(True, batch, 64)[1], args.repeats),
                base,
            )
            torch.set_num_threads(threads)

    linear = LinearFilter(3, 3, 1, 15)
    torch.nn.init.normal_(linear.weight, std=0.01)
    x = torch.rand(1, 3, 544, 544)
    case = "linear path 15x15 3->3, 544 x 544 tile"
    with torch.inference_mode():
        base = timed(lambda: F.conv2d(x, linear.weight, linear.bias, padding=7), args.repeats)
        add(case, "direct, contiguous", base)
        xc = x.contiguous(memory_format=torch.channels_last)
        direct = timed(lambda: F.conv2d(xc, linear.weight, linear.bias, padding=7), args.repeats)
        add(case, "direct, channels-last", direct, base)
        add(case, "FFT (onepair)", timed(lambda: linear(x), args.repeats), base)
        for n in (558, 560):

            def round_trip(n=n):
                return torch.fft.irfft2(torch.fft.rfft2(x, s=(n, n)), s=(n, n))

            add("FFT forward + inverse, 3 channels", f"size {n}", timed(round_trip, args.repeats))

    for name in args.presets:
        network = build(PRESETS[name][0], 3, 3).eval()
        tile = torch.rand(1, 3, 544, 544).contiguous(memory_format=torch.channels_last)
        case = f"body of {name}, 544 x 544 tile"
        with torch.inference_mode():
            base = timed(lambda n=network, t=tile: n.residual(t), args.repeats)
            add(case, "float32", base)

            def halved(network=network, tile=tile):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return network.residual(tile)

            add(case, "bfloat16 (autocast)", timed(halved, args.repeats), base)
        config = PRESETS[name][1]
        case = f"train step, {name}, batch {config.batch_size} x {config.crop}^2"
        base = timed(preset_step(name, torch.float32), args.repeats)
        add(case, "float32", base)
        add(
            case,
            "bfloat16 (autocast)",
            timed(preset_step(name, torch.bfloat16), args.repeats),
            base,
        )

    if args.compile:
        network, step = train_step(True, 4, 64)
        eager = timed(step, args.repeats)
        twin = copy.deepcopy(network)
        residual = torch.compile(twin.residual)
        optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3)
        xb = torch.rand(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)

        def step_compiled() -> None:
            loss = F.mse_loss(residual(xb), xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        start = time.perf_counter()
        step_compiled()
        compile_s = time.perf_counter() - start
        case = "train step, default U-Net, batch 4 x 64^2"
        add(case, "eager (channels-last)", eager)
        add(case, "torch.compile", timed(step_compiled, args.repeats), eager)
        rows[-1]["compile_s"] = compile_s
        print(f"torch.compile: first call {compile_s:.1f} s", flush=True)

    record = {"benchmark": "speed_steps", "machine": info, "settings": vars(args), "rows": rows}
    path = write_record(args.out, "speed_steps", record)
    print(table(rows, ["case", "variant", "ms", "speed_up"]))
    print(f"wrote {path}", flush=True)
    return record


if __name__ == "__main__":
    main()
