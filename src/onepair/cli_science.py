"""``onepair erf`` and ``onepair theorem``: why a model can be imitated from one example.

Registered on :data:`onepair.cli.app` when this module is imported. Each
command parses, calls one library function (:mod:`onepair.erf`,
:mod:`onepair.theorem`), prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from onepair.cli import _fail, app, out


@app.command("erf")
def erf_command(
    target: str = typer.Argument(
        ..., help="target spec (e.g. gaussian-blur:sigma=2) or an imitator run folder"
    ),
    out_dir: Path = typer.Option(
        Path("erf"), "-o", "--out", help="folder for erf.png, erf.json, erf.npy"
    ),
    size: int = typer.Option(96, help="side of the square test crops"),
    count: int = typer.Option(8, help="number of noisy test images"),
    sigma: float = typer.Option(25.0, help="noise added to the test images (0..255 scale)"),
    delta: float = typer.Option(0.1, help="change of the centre pixel ([0, 1] range)"),
    channels: int | None = typer.Option(
        None, help="the target's input channels (default: 3, else 1)"
    ),
    gradient: bool | None = typer.Option(
        None,
        "--gradient/--black-box",
        help="gradient of the network (run folders; their default) or queries (any target)",
    ),
    mass: float = typer.Option(0.95, help="fraction of the change the radius encloses"),
    seed: int = typer.Option(0, help="seed of the test images' noise"),
    device: str = typer.Option("auto", help="device for a run folder: auto | cpu | cuda"),
) -> None:
    """Effective receptive field (paper, Fig. 4): how far a change at the centre pixel spreads."""
    from onepair.erf import black_box_erf, gradient_erf
    from onepair.erf_figure import write_erf
    from onepair.imitator import Imitator
    from onepair.targets import load_target

    folder = Path(target.removeprefix("run:"))
    is_run = (folder / "config.json").is_file()
    if gradient and not is_run:
        _fail(f"--gradient needs an imitator run folder; {target!r} is not one (no config.json)")
    common = {"size": size, "count": count, "sigma": sigma, "channels": channels, "seed": seed}
    try:
        model = Imitator.load(folder, device=device) if is_run else load_target(target)
        if is_run and gradient is not False:
            result = gradient_erf(model, mass=mass, **common)
        else:
            result = black_box_erf(model, delta=delta, mass=mass, **common)
        write_erf(result, out_dir, {"target": str(folder) if is_run else model.spec})
    except (ValueError, TypeError, RuntimeError, OSError, ImportError) as error:
        _fail(str(error))
    s = f", map at x{result.scale} output resolution" if result.scale > 1 else ""
    out.print(
        f"{result.method} ERF of {target}: {result.mass:.0%} of the change lies within "
        f"{result.radius:.2f} input pixels of the changed pixel ({result.images} images, "
        f"{result.queries} {'queries' if result.method == 'black-box' else 'passes'}{s})",
        highlight=False,
    )
    out.print(f"written {out_dir}/erf.png, erf.json and erf.npy", highlight=False)


@app.command("theorem")
def theorem_command(
    kernel: str = typer.Option("5x5", help="size of the random linear kernel, ROWSxCOLS"),
    example: str = typer.Option("16x16", help="size of the example's output, ROWSxCOLS"),
    steps: int = typer.Option(50_000, help="most gradient-descent steps"),
    seed: int = typer.Option(0),
    out_file: Path | None = typer.Option(None, "-o", "--out", help="write the result as JSON"),
) -> None:
    """Theorem 1: gradient descent on one example recovers a linear kernel, or its projection."""
    from onepair import atomic
    from onepair.theorem import demonstrate, parse_size

    try:
        result = demonstrate(
            parse_size(kernel, "--kernel"), parse_size(example, "--example"), steps, seed
        )
        if out_file is not None:
            atomic.write_text(out_file, json.dumps(result.to_dict(), indent=2) + "\n")
    except (ValueError, OSError) as error:
        _fail(str(error))
    (kh, kw), (n, m) = result.kernel.shape, result.example
    table = Table(title=f"a random {kh}x{kw} kernel from one example with a {n}x{m} output")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in (
        ("example input", f"{n + kh - 1}x{m + kw - 1}"),
        ("patches (n*m)", str(result.patches)),
        ("kernel dimensions (w*h)", str(result.dims)),
        ("rank of the patches", str(result.rank)),
        ("patches span the kernel space", "yes" if result.spans else "no"),
        ("gradient-descent steps", f"{result.steps}{'' if result.converged else ' (limit)'}"),
        ("final loss", f"{result.loss:.2e}"),
        ("error to the true kernel", f"{result.error:.2e}"),
        ("error to its projection on the patches", f"{result.projection_error:.2e}"),
    ):
        table.add_row(name, value)
    out.print(table)
    verdict = (
        "the kernel is recovered exactly"
        if result.spans
        else f"only the projection onto the {result.rank}-dimensional span of the patches is "
        "recovered"
    )
    out.print(verdict + (f"; written {out_file}" if out_file else ""), highlight=False)


__all__ = ["erf_command", "theorem_command"]
