"""Studies: the paper's ablations as grids of cells, run resumably, locally or on Dask.

``onepair study run GRID.toml -o STUDY`` expands the grid (:mod:`.grid`), runs
the cells the store lacks (:mod:`.execute`, one cell = :func:`.cell.run_cell`),
and keeps one row per finished cell in ``STUDY/study.sqlite`` (:mod:`.store`);
``onepair study plot`` draws the paper's Fig. 3 analogues (:mod:`.plot`).
Grid files for each ablation of the paper ship in ``onepair/study/grids``.
"""

from __future__ import annotations

from pathlib import Path

from onepair.study.execute import run_study
from onepair.study.grid import SETTINGS, Cell, Grid, load_grid, parse_grid, target_spec
from onepair.study.store import Store

GRIDS = Path(__file__).parent / "grids"


def shipped_grids() -> dict[str, Path]:
    """name -> path of the grid files that ship with onepair."""
    return {p.stem: p for p in sorted(GRIDS.glob("*.toml"))}


__all__ = [
    "GRIDS",
    "SETTINGS",
    "Cell",
    "Grid",
    "Store",
    "load_grid",
    "parse_grid",
    "run_study",
    "shipped_grids",
    "target_spec",
]
