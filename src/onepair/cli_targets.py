"""``onepair query``, ``extract``, ``targets`` and ``serve``: the commands about black boxes.

Make an example pair by asking a target, cut one out of a published figure,
list the zoo's targets, and serve a target or an imitator over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from onepair import server
from onepair.cli import _fail, app, err, out


@app.command("query")
def query_command(
    target: str = typer.Argument(..., help="target spec, e.g. 'noise:sigma=25|tv-denoise'"),
    image: str = typer.Argument(..., help="clean image file or builtin:NAME"),
    out_dir: Path = typer.Option(..., "-o", "--out", help="folder for input.png and output.png"),
    size: int | None = typer.Option(None, help="central crop of a builtin image"),
    seed: int = typer.Option(0, help="seed of the target's degradations"),
    check_determinism: bool = typer.Option(
        True, help="ask the target a second time and compare the answers (one extra query)"
    ),
) -> None:
    """Make an example pair: the target's input (after degradations) and its output.

    Both are written as 16-bit PNGs, with query.json (what was asked, and whether
    the target answered the same input twice alike).
    """
    import json

    from onepair import atomic
    from onepair.determinism import check_determinism as compare_answers
    from onepair.images import save_image
    from onepair.samples import PREFIX, read, sample
    from onepair.targets import load_target

    try:
        spec = load_target(target)
        clean = sample(image[len(PREFIX) :], size) if image.startswith(PREFIX) else read(image)
        x = spec.degrade(clean, seed)
        y = spec(x)
        save_image(out_dir / "input.png", x, bit_depth=16)
        save_image(out_dir / "output.png", y, bit_depth=16)
        found = compare_answers(spec, x, answer=y) if check_determinism else None
        record = {
            "target": spec.spec,
            "image": image,
            "size": size,
            "seed": seed,
            "input": "input.png",
            "output": "output.png",
            "input_shape": list(x.shape),
            "output_shape": list(y.shape),
            "queries": spec.queries,
            "pixels": spec.pixels,
            "determinism": found.to_dict() if found is not None else None,
        }
        atomic.write_text(out_dir / "query.json", json.dumps(record, indent=2) + "\n")
    except (ValueError, RuntimeError, OSError) as error:
        _fail(str(error))
    out.print(
        f"wrote {out_dir / 'input.png'} and {out_dir / 'output.png'} "
        f"({x.shape[0]}x{x.shape[1]} -> {y.shape[0]}x{y.shape[1]}x{y.shape[2]}, 16-bit)"
    )
    if found is not None:
        out.print(found.describe(), highlight=False)


@app.command("extract")
def extract_command(
    figure: Path = typer.Argument(..., help="the published figure (PNG, JPEG, TIFF)"),
    input_box: list[str] = typer.Option(
        ..., "--input-box", help="x,y,w,h of an input panel in figure pixels; repeatable"
    ),
    output_box: list[str] = typer.Option(
        ..., "--output-box", help="x,y,w,h of its output panel; repeatable, in the same order"
    ),
    out_dir: Path = typer.Option(
        ..., "-o", "--out", help="folder for input.png, output.png, extract.json (pair-N/ each)"
    ),
    receptive_field: int = typer.Option(31, help="warn when the clean crop is smaller than this"),
) -> None:
    """Cut registered input/output pairs out of a published figure, ready for `onepair fit`."""
    from onepair.figures import extract_figure

    try:
        results = extract_figure(figure, input_box, output_box, out_dir, receptive_field)
    except (ValueError, OSError) as error:
        _fail(str(error))
    for i, r in enumerate(results, 1):
        dy, dx = r.shift
        out.print(
            f"pair {i}: input {r.input.shape[0]}x{r.input.shape[1]} at {r.input_box}, "
            f"scale {r.scale}, shift ({dy:+.2f}, {dx:+.2f}) px, {len(r.warnings)} warning(s)",
            highlight=False,
        )
        for warning in r.warnings:
            err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    folders = (
        [str(out_dir)]
        if len(results) == 1
        else [str(out_dir / f"pair-{i}") for i in range(1, len(results) + 1)]
    )
    out.print(f"wrote {out_dir}; fit with: onepair fit {' '.join(folders)} -o RUN", highlight=False)


@app.command("targets")
def targets_command() -> None:
    """List the zoo's targets, degradations and adapters with their default parameters."""
    from onepair.targets import describe

    table = Table(
        title="targets: 'degradation|model', e.g. noise:sigma=25|tv-denoise; "
        "adapters take options after '#', e.g. onnx:m.onnx#layout=nhwc"
    )
    for column in ("kind", "spec with defaults", "what it is"):
        table.add_column(column, overflow="fold")
    for row in describe():
        table.add_row(*row)
    out.print(table)


@app.command("serve")
def serve_command(
    what: str = typer.Argument(..., help="a target spec, or a run folder (an imitator)"),
    host: str = typer.Option(server.HOST, help="address to bind (loopback by default)"),
    port: int = typer.Option(server.PORT, help="port; 0 picks a free one"),
    max_body: int = typer.Option(server.MAX_BODY, help="largest request body in bytes"),
    concurrency: int = typer.Option(server.CONCURRENCY, help="requests processed at once"),
    timeout: float = typer.Option(
        server.TIMEOUT, help="seconds a client may take to send its request"
    ),
    token: str | None = typer.Option(
        None, envvar="ONEPAIR_TOKEN", help="require 'Authorization: Bearer TOKEN'"
    ),
    max_pixels: int = typer.Option(server.MAX_PIXELS, help="largest image (H x W) accepted"),
) -> None:
    """Serve a target or an imitator as the HTTP API the http:// target speaks."""
    from onepair.serve import serve

    try:
        serve(
            what,
            host=host,
            port=port,
            max_body=max_body,
            concurrency=concurrency,
            timeout=timeout,
            token=token,
            announce=lambda text: out.print(text, highlight=False),
            max_pixels=max_pixels,
        )
    except (ValueError, OSError) as error:
        _fail(str(error))
