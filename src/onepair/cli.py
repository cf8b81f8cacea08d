"""The ``onepair`` command. Each subcommand parses, calls one library function, prints."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Imitate a black-box image-to-image model from one input/output example.",
)
# Piped output gets a wide console: tables stay one line per row.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(2)


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# `onepair fit` first in the help: its module registers it on `app` when imported.
from onepair import cli_fit  # noqa: E402, F401, I001


PRECISION_HELP = (
    "auto | float32 | bfloat16: what the network's body computes in; auto is bfloat16 on a "
    "CPU with AMX tiles or AVX-512 bfloat16 (Intel Xeon 4th generation on, AMD Zen 4 on), "
    "else float32"
)


@app.command("apply")
def apply_command(
    run: Path = typer.Argument(..., help="run folder written by `onepair fit`"),
    images: list[Path] = typer.Argument(..., help="images to process"),
    out_dir: Path = typer.Option(..., "-o", "--out", help="folder for the results"),
    tile: int | None = typer.Option(
        None,
        help="tile side in input pixels; default 512 on the CPU, 2048 on a GPU "
        "(streamed TIFFs: 512 on both)",
    ),
    bit_depth: int | None = typer.Option(None, help="8 or 16; default: as the input file"),
    device: str = typer.Option("auto"),
    compress: bool = typer.Option(False, help="zlib-compress streamed TIFF output"),
    ensemble: bool = typer.Option(
        False,
        help="average over the flips and rotations the fit found (that many times slower; "
        "TIFFs are then not streamed)",
    ),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Apply a fitted imitator to IMAGES; results keep their file names in --out.

    TIFF images stream: read and written a band of rows at a time (tiled output), so
    an image larger than memory never needs to be whole in it.
    """
    import torch

    from onepair.images import TIFF_SUFFIXES, file_bit_depth, load_image, save_image
    from onepair.imitator import Imitator
    from onepair.progress import counted
    from onepair.stream import apply_tiff
    from onepair.tiling import TILE_CPU, resolve_precision

    try:
        imitator = Imitator.load(run, device=device)
        computes = resolve_precision(precision, imitator.device)
        if computes != torch.float32 and not quiet:
            out.print(
                f"the network's body computes in {str(computes).removeprefix('torch.')}"
                f" ({'this CPU has bfloat16 units; ' if precision == 'auto' else ''}"
                "--precision float32 for float32)"
            )
        for path in images:
            averaged = ensemble and len(imitator.equivariances) > 1  # whole image in memory
            if path.suffix.lower() in TIFF_SUFFIXES and path.is_file() and not averaged:
                with counted(f"{path.name} bands", enabled=not quiet) as update:
                    shape, depth = apply_tiff(
                        imitator.network,
                        path,
                        out_dir / path.name,
                        tile=TILE_CPU if tile is None else tile,
                        bit_depth=bit_depth,
                        device=imitator.device,
                        on_tile=update,
                        compress=compress,
                        precision=precision,
                    )
                out.print(
                    f"{path} -> {out_dir / path.name} ({'x'.join(map(str, shape))}, "
                    f"{depth}-bit, streamed)"
                )
                continue
            with counted(f"{path.name} tiles", enabled=not quiet) as update:
                result = imitator.apply(
                    load_image(path),
                    tile="auto" if tile is None else tile,
                    on_tile=update,
                    ensemble=ensemble,
                    precision=precision,
                )
            depth = bit_depth or min(file_bit_depth(path), 16)
            written = save_image(out_dir / path.name, result, bit_depth=depth)
            out.print(
                f"{path} -> {written} ({result.shape[0]}x{result.shape[1]}x"
                f"{result.shape[2]}, {depth}-bit)"
            )
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))


@app.command("eval")
def eval_command(
    run: Path = typer.Argument(..., help="run folder written by `onepair fit`"),
    target: str = typer.Option(..., help="the real model's spec, e.g. gaussian-blur:sigma=2"),
    images: list[str] = typer.Option(..., "--images", help="files or builtin:NAME, repeatable"),
    out_dir: Path | None = typer.Option(
        None, "-o", "--out", help="folder for eval.json/csv (default RUN/eval)"
    ),
    seed: int = typer.Option(1, help="seed of the target's degradations"),
    tile: int | None = typer.Option(None, help="tile side; default 512 on the CPU, 2048 on a GPU"),
    check_determinism: bool = typer.Option(
        False, help="ask the target twice on the first image (one extra query)"
    ),
    precision: str = typer.Option("auto", help=PRECISION_HELP),
) -> None:
    """PSNR/SSIM of the imitator vs the real target on images other than the example."""
    from onepair.evaluate import evaluate
    from onepair.imitator import Imitator
    from onepair.progress import counted

    try:
        imitator = Imitator.load(run)
        with counted("eval images") as update:
            evaluation = evaluate(
                imitator,
                target,
                images,
                seed=seed,
                tile="auto" if tile is None else tile,
                on_image=update,
                check_determinism=check_determinism,
                precision=precision,
            )
    except (ValueError, RuntimeError, OSError) as error:
        _fail(str(error))
    table = Table(title=f"imitation of {target}")
    for column in ("image", "PSNR dB", "SSIM", "input PSNR dB", "input SSIM"):
        table.add_column(column, justify="left" if column == "image" else "right")
    for r in evaluation.rows:
        table.add_row(
            r.image,
            _db(r.psnr),
            f"{r.ssim:.4f}",
            _db(r.floor_psnr),
            "-" if r.floor_ssim is None else f"{r.floor_ssim:.4f}",
        )
    table.add_row(
        "mean",
        _db(evaluation.mean("psnr")),
        f"{evaluation.mean('ssim'):.4f}",
        _db(evaluation.mean("floor_psnr")),
        "-" if evaluation.mean("floor_ssim") is None else f"{evaluation.mean('floor_ssim'):.4f}",
        style="bold",
    )
    out.print(table)
    json_path, csv_path = evaluation.write(out_dir or run / "eval")
    if evaluation.deterministic is False:
        out.print(
            f"the target is NOT deterministic: two answers to one input are "
            f"{_db(evaluation.nondeterminism_psnr)} dB PSNR apart; even a perfect copy of its "
            "average answer scores only about 3 dB more against any one answer"
        )
    out.print(
        f"{evaluation.queries} target queries, {evaluation.pixels:,} pixels sent; "
        f"written {json_path} and {csv_path}"
    )


@app.command("demo")
def demo_command(
    out_dir: Path = typer.Option(Path("demo-out"), "-o", "--out"),
    seconds: float = typer.Option(40.0, help="fit time per target"),
    target: list[str] | None = typer.Option(None, help="targets (default: the demo's four)"),
    quiet: bool = typer.Option(False),
) -> None:
    """Imitate built-in targets from one built-in photograph; evaluate on the others."""
    from onepair.demo import EXAMPLE, HELD_OUT, TARGETS, run_demo

    targets = tuple(target) if target else TARGETS
    out.print(
        f"example: builtin:{EXAMPLE}; held out: {', '.join(HELD_OUT)}; "
        f"{seconds:.0f} s of fitting per target"
    )
    try:
        rows = run_demo(out_dir, targets, seconds=seconds, show_progress=not quiet)
    except ValueError as error:
        _fail(str(error))
    table = Table(title="imitation fidelity on held-out images (imitator vs target output)")
    table.add_column("target", no_wrap=True, min_width=max(len(r["target"]) for r in rows))
    for column in ("PSNR dB", "SSIM", "input PSNR dB", "val PSNR dB", "fit s"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["target"],
            f"{r['psnr']:.2f} ± {r['psnr_std']:.2f}",
            f"{r['ssim']:.4f}",
            _db(r["floor_psnr"]),
            _db(r["val_psnr"]),
            f"{r['fit_seconds']:.0f}",
        )
    out.print(table)
    out.print(
        f"written {out_dir}/results.json, results.csv and per-target folders with "
        "input | target | imitation PNGs"
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; `onepair fit ... --resume` continues a fit from its checkpoint")
        sys.exit(130)


# Commands defined in their own modules register themselves on `app` when imported.
from onepair import cli_audit, cli_science, cli_study, cli_targets, cli_zoo  # noqa: E402, F401, I001

__all__ = ["app", "main"]

if __name__ == "__main__":
    # `python -m onepair.cli` runs this file as __main__, a second copy of the module: the
    # commands in their own modules registered themselves on onepair.cli's app, so run that
    from onepair.cli import main as installed_main

    installed_main()
