"""Where a GPU's time goes in apply and in a fit, and which switches help.

For a lent GPU's few minutes (docs/PERFORMANCE.md, "On a GPU"). Three parts:

- ``network``: the default network on a 2048 x 2048 tile and its parts (the
  linear path through the FFT or directly, cuDNN's algorithm search off and on,
  float16);
- ``apply``: host-device copies of an 8192 x 8192 RGB image (pageable and
  page-locked, each way), and whole applies of 1024, 4096 and 8192 square images
  (megapixels/s) with the output returned in page-locked memory or copied into a
  fresh array, and the input staged through page-locked memory or not
  (``tiling.CUDA_PINNED_OUTPUT``, ``tiling.CUDA_PINNED_INPUT``);
- ``fit``: the default fit of the teacher denoiser on the demo's example for
  ``--seconds``, each training step replayed from a CUDA graph or run eagerly
  (``steps.CUDA_GRAPHS``), at several batch sizes and learning rates; held-out
  PSNR on the demo's photographs, steps per second, and the time one
  validation takes.

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
from onepair import steps, tiling
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
def settings(
    benchmark: bool = False,
    fft: bool = True,
    fused: bool = True,
    graphs: bool = True,
    pinned_output: bool = True,
    pinned_input: bool = False,
):
    switches = [
        (torch.backends.cudnn, "benchmark", benchmark),
        (linear_module, "FFT_ON_CUDA", fft),
        (fitting, "CUDA_CUDNN_BENCHMARK", benchmark),
        (steps, "CUDA_FUSED_ADAM", fused),
        (steps, "CUDA_GRAPHS", graphs),
        (tiling, "CUDA_PINNED_OUTPUT", pinned_output),
        (tiling, "CUDA_PINNED_INPUT", pinned_input),
    ]
    saved = [getattr(owner, name) for owner, name, _ in switches]
    for owner, name, value in switches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name, _), value in zip(switches, saved, strict=True):
            setattr(owner, name, value)


def random_network():
    """The default network with random weights that are not zero, on the GPU (as
    apply_speed.py: the cost does not depend on the weights)."""
    model, _ = recipe("default", 3, 3, 1)
    network = build(model, 3, 3, 1)
    with torch.no_grad():
        torch.manual_seed(0)
        torch.nn.init.normal_(network.head[0].weight, std=0.1)
        for name, weights in network.linear.named_buffers():  # an adaptive path has two
            if name.endswith("weight"):
                weights.normal_(0.0, 0.01)
    return Imitator(network, model).to("cuda").network


def network_part() -> list[dict]:
    network = random_network()
    tile = torch.rand(1, 3, 2048, 2048, device="cuda").contiguous(memory_format=torch.channels_last)
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
    return rows


def apply_part() -> list[dict]:
    network = random_network()
    image = np.random.default_rng(0).random((8192, 8192, 3), dtype=np.float32)
    rows = []

    def add(what: str, seconds: float, pixels: float, first: float | None = None) -> None:
        row = {"what": what, "ms": seconds * 1e3, "mpix_per_s": pixels / seconds}
        if first is not None:
            row["first_mpix_per_s"] = pixels / first
        rows.append(row)
        note = f" (first run {pixels / first:.0f})" if first is not None else ""
        print(f"  {what}: {seconds * 1e3:.2f} ms, {pixels / seconds:.0f} Mpx/s{note}", flush=True)

    with torch.inference_mode():
        copies(image, add)
        for side in (1024, 4096, 8192):
            part = np.ascontiguousarray(image[:side, :side])
            pixels = side * side / 1e6
            for pinned_output, pinned_input in ((False, False), (True, False), (True, True)):
                for tile in (512, 2048):
                    with settings(pinned_output=pinned_output, pinned_input=pinned_input):
                        first, best = first_and_best(
                            lambda: apply_network(network, part, tile, "cuda"),  # noqa: B023
                        )
                    name = f"pinned output={pinned_output} input={pinned_input}"
                    add(f"apply {side}: tile {tile}, {name}", best, pixels, first)
    return rows


def copies(image: np.ndarray, add) -> None:
    """Each way between host and GPU, from pageable and from page-locked memory."""
    mpx = image.shape[0] * image.shape[1] / 1e6
    add("8k to the GPU, pageable", timed(lambda: torch.from_numpy(image).to("cuda")), mpx)
    add("8k into page-locked memory", timed(lambda: torch.from_numpy(image).pin_memory()), mpx)
    pinned = torch.from_numpy(image).pin_memory()
    add("8k to the GPU, pinned", timed(lambda: pinned.to("cuda", non_blocking=True)), mpx)
    held = torch.from_numpy(image).to("cuda")
    add("8k back to the host, pageable", timed(held.cpu), mpx)
    add("8k back to the host, pinned", timed(lambda: pinned.copy_(held, non_blocking=True)), mpx)


def first_and_best(fn, repeats: int = 3) -> tuple[float, float]:
    """The first call's seconds and the best of ``repeats`` more."""
    times = []
    for _ in range(repeats + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:])


def fit_part(seconds: float) -> list[dict]:
    pair, held = ttf.example("noise:sigma=25|teacher-denoiser", 256, 0)
    ttf.warm_up()
    variants = [
        ("default-gpu", {"graphs": False}),
        ("default-gpu", {}),
        ("default-gpu:lr=0.002", {"graphs": False}),
        ("default-gpu:lr=0.002", {}),
        ("default-gpu:batch_size=128", {}),
        ("default-gpu:batch_size=256", {}),
        ("default-gpu:val_every=200", {}),
        ("default", {}),
    ]
    rows = []
    for text, switches in variants:
        with settings(**switches):
            scores, metrics, _ = ttf.run_fit(pair, text, seconds, 0, held)
        row = {
            "recipe": text,
            "graphs": switches.get("graphs", True),
            "cuda_graph": metrics.get("cuda_graph"),
            "seconds": seconds,
            "psnr": scores["psnr"],
            "steps": metrics["steps"],
            "steps_per_s": metrics["steps"] / metrics["seconds"],
        }
        rows.append(row)
        print(
            f"  {text} {switches}: {row['psnr']:.2f} dB, {row['steps']} steps, "
            f"graphed {row['cuda_graph']}",
            flush=True,
        )
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
    parser.add_argument(
        "--parts", nargs="+", default=["apply", "fit"], choices=["network", "apply", "fit"]
    )
    parser.add_argument("-o", "--out", default="bench-out", help="folder for gpu_probe.json")
    args = parser.parse_args(argv)
    info = machine()
    print(machine_line(info), flush=True)
    record = {"benchmark": "gpu_probe", "machine": info, "settings": vars(args)}
    if "network" in args.parts:
        print("network", flush=True)
        record["network"] = network_part()
        write_record(args.out, "gpu_probe", record)
        print(table(record["network"], ["what", "ms", "mpix_per_s"]))
    if "apply" in args.parts:
        print("apply", flush=True)
        record["apply"] = apply_part()
        write_record(args.out, "gpu_probe", record)
        print(table(record["apply"], ["what", "ms", "mpix_per_s", "first_mpix_per_s"]))
    if "fit" in args.parts:
        print("fit", flush=True)
        record["fit"] = fit_part(args.seconds)
        write_record(args.out, "gpu_probe", record)
        columns = ["recipe", "graphs", "cuda_graph", "seconds", "psnr", "steps", "steps_per_s"]
        print(table(record["fit"], columns))
    return record


if __name__ == "__main__":
    main()
