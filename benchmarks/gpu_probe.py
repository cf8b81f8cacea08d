"""Where a GPU's time goes in apply and in a fit, and which switches help.

For a lent GPU's few minutes (docs/PERFORMANCE.md, "On a GPU"). Two parts:

- ``apply``: the default network on a 2048 x 2048 tile and its parts (the
  linear path through the FFT or directly, cuDNN's algorithm search off and on,
  float16), host-device copies of an 8192 x 8192 RGB image (pageable and
  pinned), and whole applies of that image (megapixels/s) under each setting;
- ``fit``: the default fit of the teacher denoiser on the demo's example for
  ``--seconds``, with larger batches, a higher learning rate, rarer validation,
  a fused Adam and cuDNN's search; held-out PSNR on the demo's photographs,
  steps per second, and the time one validation takes.

    python benchmarks/gpu_probe.py -o bench-out/gpu            # about 3 minutes
"""

from __future__ import annotations

import argparse
import importlib
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch

import time_to_fidelity as ttf
from common import machine, machine_line, recipe, table, write_record
from onepair.imitator import Imitator
from onepair.models import build
from onepair.models import linear as linear_module
from onepair.tiling import apply_network

fitting = importlib.import_module("onepair.fit")  # the module (onepair.fit is also a function)


def timed(fn, repeats: int = 5) -> float:
    """Best of ``repeats`` synchronised runs after one warm-up, in seconds."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


@contextmanager
def settings(benchmark: bool = False, fft: bool = True, fused: bool = False):
    saved = (torch.backends.cudnn.benchmark, linear_module.FFT_ON_CUDA)
    saved_fit = (fitting.CUDA_FUSED_ADAM, fitting.CUDA_CUDNN_BENCHMARK)
    torch.backends.cudnn.benchmark, linear_module.FFT_ON_CUDA = benchmark, fft
    fitting.CUDA_FUSED_ADAM, fitting.CUDA_CUDNN_BENCHMARK = fused, benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, linear_module.FFT_ON_CUDA = saved
        fitting.CUDA_FUSED_ADAM, fitting.CUDA_CUDNN_BENCHMARK = saved_fit


def apply_part() -> list[dict]:
    model, _ = recipe("default", 3, 3, 1)
    network = build(model, 3, 3, 1)
    with torch.no_grad():  # as apply_speed.py: random weights that are not zero
        torch.manual_seed(0)
        torch.nn.init.normal_(network.head[0].weight, std=0.1)
        network.linear.weight.normal_(0.0, 0.01)
    network = Imitator(network, model).to("cuda").network
    tile = torch.rand(1, 3, 2048, 2048, device="cuda").contiguous(memory_format=torch.channels_last)
    image = np.random.default_rng(0).random((8192, 8192, 3), dtype=np.float32)
    mpx = 8192 * 8192 / 1e6
    rows = []

    def add(what: str, seconds: float, pixels: float) -> None:
        rows.append({"what": what, "ms": seconds * 1e3, "mpix_per_s": pixels / seconds})
        print(f"  {what}: {seconds * 1e3:.2f} ms, {pixels / seconds:.0f} Mpx/s", flush=True)

    with torch.inference_mode():
        reference = network(tile)
        for benchmark in (False, True):
            for fft in (True, False):
                with settings(benchmark, fft):
                    name = f"benchmark={benchmark} fft={fft}"
                    for part in ("forward", "linear", "residual"):
                        run = network if part == "forward" else getattr(network, part)
                        add(f"tile 2048: {part}, {name}", timed(lambda: run(tile)), 4.19)  # noqa: B023
        with settings(True, False), torch.autocast("cuda", dtype=torch.float16):
            half = network(tile).float()
            seconds = timed(lambda: network(tile))
            add("tile 2048: forward, float16, benchmark=True fft=False", seconds, 4.19)
        error = (half - reference).abs().max().item()
        rows.append({"what": "float16 max abs error on the tile", "ms": None, "error": error})
        print(f"  float16 max abs error {error:.2e}", flush=True)
        add("8k to the GPU, pageable", timed(lambda: torch.from_numpy(image).to("cuda")), mpx)
        pinned = torch.from_numpy(image).pin_memory()
        add("8k to the GPU, pinned", timed(lambda: pinned.to("cuda", non_blocking=True)), mpx)
        held = torch.from_numpy(image).to("cuda")
        add("8k back to the host", timed(held.cpu), mpx)
        del held
        for benchmark, fft, tile_side in [
            (False, True, 2048),
            (True, True, 2048),
            (True, False, 2048),
            (True, False, 4096),
            (True, False, 1024),
        ]:
            with settings(benchmark, fft):
                seconds = timed(lambda: apply_network(network, image, tile_side, "cuda"), 3)  # noqa: B023
                add(f"apply 8k: tile {tile_side}, benchmark={benchmark} fft={fft}", seconds, mpx)
        small = image[:1024, :1024]
        with settings(True, False):
            add(
                "apply 1k: tile 2048, benchmark, direct",
                timed(lambda: apply_network(network, small, 2048, "cuda")),
                1.05,
            )
    return rows


def fit_part(seconds: float) -> list[dict]:
    pair, held = ttf.example("noise:sigma=25|teacher-denoiser", 256, 0)
    ttf.warm_up()
    variants = [
        ("default", {}),
        ("default:batch_size=64", {}),
        ("default:batch_size=64", {"fused": True}),
        ("default:batch_size=64", {"benchmark": True}),
        ("default:batch_size=64,val_every=200", {}),
        ("default:batch_size=64,lr=0.004", {}),
        ("default:batch_size=64,lr=0.004,val_every=200", {"fused": True, "benchmark": True}),
        (
            "default:batch_size=128,crop=96,lr=0.004,val_every=200",
            {"fused": True, "benchmark": True},
        ),
    ]
    rows = []
    for text, switches in variants:
        with settings(**switches):
            scores, metrics, _ = ttf.run_fit(pair, text, seconds, 0, held)
        row = {
            "recipe": text,
            **{k: True for k in switches},
            "seconds": seconds,
            "psnr": scores["psnr"],
            "steps": metrics["steps"],
            "steps_per_s": metrics["steps"] / metrics["seconds"],
        }
        rows.append(row)
        print(f"  {text} {switches}: {row['psnr']:.2f} dB, {row['steps']} steps", flush=True)
    # the likely GPU recipe on two targets at three budgets
    best = "default:batch_size=64,lr=0.004,val_every=200"
    for spec in ("noise:sigma=25|tv-denoise:weight=0.1", "noise:sigma=25|teacher-denoiser"):
        one, targets_held = ttf.example(spec, 256, 0)
        for budget in (2.0, 5.0, 10.0):
            with settings(benchmark=True, fused=True):
                scores, metrics, _ = ttf.run_fit(one, best, budget, 0, targets_held)
            rows.append(
                {
                    "recipe": f"{spec}: {best}",
                    "fused": True,
                    "benchmark": True,
                    "seconds": budget,
                    "psnr": scores["psnr"],
                    "steps": metrics["steps"],
                    "steps_per_s": metrics["steps"] / metrics["seconds"],
                }
            )
            print(f"  {spec} {best} {budget:g} s: {scores['psnr']:.2f} dB", flush=True)
    # one validation's cost
    model, config = recipe("default", 3, 3, 1)
    imitator = fitting.fit(pair, model, replace(config, steps=1), show_progress=False)
    from onepair.validation import Holdout, Holdouts

    network = imitator.network.train(False)
    span = network.receptive_field()
    validate = Holdouts([Holdout(pair, 0.125, span.margin, 32, network.multiple)])
    cost = timed(lambda: validate(network, imitator.device), 10)
    rows.append({"recipe": "one validation", "seconds": cost})
    print(f"  one validation: {cost * 1e3:.1f} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each fit's budget")
    parser.add_argument("--parts", nargs="+", default=["apply", "fit"])
    parser.add_argument("-o", "--out", default="bench-out", help="folder for gpu_probe.json")
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)
    record = {"benchmark": "gpu_probe", "machine": info, "settings": vars(args)}
    if "apply" in args.parts:
        print("apply", flush=True)
        record["apply"] = apply_part()
        write_record(args.out, "gpu_probe", record)
        print(table(record["apply"], ["what", "ms", "mpix_per_s"]))
    if "fit" in args.parts:
        print("fit", flush=True)
        record["fit"] = fit_part(args.seconds)
        write_record(args.out, "gpu_probe", record)
        columns = ["recipe", "fused", "benchmark", "seconds", "psnr", "steps", "steps_per_s"]
        print(table(record["fit"], columns))
    return record


if __name__ == "__main__":
    main()
