"""``onepair study run|status|export|plot|grids``: the paper's ablations as resumable grids.

Registered on :data:`onepair.cli.app` when imported; each command parses,
calls :mod:`onepair.study`, prints.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from onepair.cli import _fail, app, err, out

study_app = typer.Typer(no_args_is_help=True, help="Grids of fits: the paper's ablations.")
app.add_typer(study_app, name="study")


def _grid_path(grid: str) -> Path:
    """A grid file, or the name of one that ships with onepair."""
    from onepair.study import shipped_grids

    shipped = shipped_grids()
    if grid in shipped and not Path(grid).exists():
        return shipped[grid]
    path = Path(grid)
    if not path.is_file():
        _fail(f"no grid file {grid}; shipped grids: {', '.join(shipped)}")
    return path


def _open(study: Path):
    """The store of an existing study folder (a clear error when there is none)."""
    from onepair.study import Store

    try:
        return Store(study, create=False)
    except FileNotFoundError as error:
        _fail(str(error))


@study_app.command("run")
def run_command(
    grid: str = typer.Argument(..., help="GRID.toml, or a shipped grid's name (study grids)"),
    out_dir: Path = typer.Option(..., "-o", "--out", help="study folder (resumes if it exists)"),
    workers: int = typer.Option(0, help="local worker processes (0: run in this process)"),
    scheduler: str | None = typer.Option(
        None, help="Dask scheduler address, tcp://HOST:PORT (pip install 'onepair\\[cluster]')"
    ),
    gpus: bool = typer.Option(False, help="each cell asks Dask workers for one GPU resource"),
    full: bool = typer.Option(False, help="apply the grid's \\[full] table (full-size run)"),
) -> None:
    """Run the grid's cells that STUDY lacks; finished cells are kept across runs."""
    from onepair.study import load_grid, run_study

    try:
        parsed = load_grid(_grid_path(grid), full=full)
        counts = run_study(
            parsed,
            out_dir,
            workers=workers,
            scheduler=scheduler,
            gpus=gpus,
            say=lambda text: err.print(text, highlight=False, markup=False),
        )
    except (ValueError, FileNotFoundError, ImportError, OSError) as error:
        _fail(str(error))
        return
    out.print(" ".join(f"{k}: {v}" for k, v in counts.items()), highlight=False)


@study_app.command("status")
def status_command(study: Path = typer.Argument(..., help="study folder")) -> None:
    """Cells done, running, failed and pending; the errors of failed cells."""
    store = _open(study)
    counts = store.status()
    out.print(" ".join(f"{k}: {v}" for k, v in counts.items()), highlight=False)
    for row in store.rows("failed"):
        first = (row["error"] or "").splitlines()[0] if row["error"] else ""
        out.print(f"failed {row['key']} (attempt {row['attempts']}): {first}", highlight=False)
    store.close()


@study_app.command("export")
def export_command(
    study: Path = typer.Argument(..., help="study folder"),
    csv_path: Path | None = typer.Option(None, "-o", "--out", help="CSV file (default: stdout)"),
) -> None:
    """Every finished cell as CSV: its settings, then its results."""
    from onepair import atomic

    store = _open(study)
    text = store.export_csv()
    store.close()
    if csv_path is None:
        print(text, end="")
    else:
        atomic.write_text(csv_path, text)
        err.print(f"written {csv_path}")


@study_app.command("plot")
def plot_command(
    study: Path = typer.Argument(..., help="study folder"),
    x: str | None = typer.Option(None, help="x axis: a factor or a result column (num_params)"),
    y: str = typer.Option("psnr", help="psnr | ssim | any result column"),
    png: Path | None = typer.Option(None, "-o", "--out", help="PNG (default STUDY/plot-X.png)"),
) -> None:
    """PSNR against a factor, one line per target, error bars over seeds (paper Fig. 3)."""
    from onepair.study import Store
    from onepair.study.plot import default_x, plot

    try:
        store = Store(study, create=False)
        grid = store.last_grid()
        factors = list(grid.factors) if grid else []
        axis = x or default_x(factors)
        path = plot(store.rows("done"), axis, factors, png or study / f"plot-{axis}.png", y=y)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
        return
    out.print(f"written {path}", highlight=False)


@study_app.command("table")
def table_command(
    study: Path = typer.Argument(..., help="study folder"),
    x: str | None = typer.Option(None, help="columns: a factor or a result column"),
    y: str = typer.Option("psnr", help="psnr | ssim | any result column"),
) -> None:
    """The plot's numbers as a Markdown table: mean ± std over seeds."""
    from onepair.study import Store
    from onepair.study.plot import default_x, markdown_table

    try:
        store = Store(study, create=False)
        grid = store.last_grid()
        factors = list(grid.factors) if grid else []
        text = markdown_table(store.rows("done"), x or default_x(factors), factors, y)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
        return
    print(text, end="")


@study_app.command("grids")
def grids_command() -> None:
    """The grid files that ship with onepair: one per ablation of the paper."""
    from onepair.study import load_grid, shipped_grids

    table = Table("name", "cells", "factors", "file")
    for name, path in shipped_grids().items():
        grid = load_grid(path, check_targets=False)
        factors = ", ".join(f"{k} ({len(v)})" for k, v in grid.factors.items())
        table.add_row(name, str(len(grid.cells())), factors, str(path))
    out.print(table)
