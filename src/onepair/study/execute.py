"""Running a study: the driver and its three ways of running cells.

The driver takes the grid's cells that the store does not hold as done,
hands them to an executor and writes each row the moment it comes back;
cells that were running when a previous driver died are taken up again.

* sequential (default): one cell after another in this process;
* ``workers=N``: a local pool of N processes, one torch thread each;
* ``scheduler="tcp://HOST:PORT"``: an existing Dask distributed cluster
  (``pip install 'onepair[cluster]'``). A worker that dies mid-cell loses
  nothing: the scheduler runs the cell again on another worker. With
  ``gpus=True`` each cell asks for one ``GPU`` resource (start workers with
  ``--resources GPU=1``).

Each executor keeps only as many cells in flight as it can run at once, so a
cell shown as running in ``onepair study status`` is really running.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onepair.study.grid import Cell, Grid
from onepair.study.store import Store


@dataclass(frozen=True)
class Failure:
    """A cell that raised: the exception's type and message, and the traceback's tail."""

    error: str


Outcome = dict[str, Any] | Failure
Executor = Iterator[tuple[Cell, Outcome]]


def cell_in_worker(settings: dict[str, Any], threads: int | None = 1) -> Outcome:
    """Run one cell where an executor put it; exceptions become a :class:`Failure`."""
    from onepair.study.cell import run_cell

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        return run_cell(settings)
    except Exception as error:  # one bad cell must not end the study
        tail = "".join(traceback.format_exception(error)[-3:])
        return Failure(f"{type(error).__name__}: {error}\n{tail}")


def sequential(cells: Sequence[Cell], start: Callable[[Cell], None]) -> Executor:
    for cell in cells:
        start(cell)
        yield cell, cell_in_worker(cell.settings, threads=None)


def pool(cells: Sequence[Cell], start: Callable[[Cell], None], workers: int) -> Executor:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no torch state copied by fork
    queue = list(reversed(cells))
    with ProcessPoolExecutor(workers, mp_context=context) as executor:
        running: dict[Any, Cell] = {}
        try:
            while queue or running:
                while queue and len(running) < workers:
                    cell = queue.pop()
                    start(cell)
                    running[executor.submit(cell_in_worker, cell.settings)] = cell
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield running.pop(future), future.result()
        finally:
            for future in running:
                future.cancel()


def dask(cells: Sequence[Cell], start: Callable[[Cell], None], scheduler: str, gpus: bool):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError(
            "--scheduler needs Dask distributed: pip install 'onepair[cluster]'"
        ) from None
    with Client(scheduler, timeout="30s") as client:
        slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) or 1
        queue = list(reversed(cells))
        pending: dict[Any, Cell] = {}
        resources = {"GPU": 1} if gpus else None

        def submit() -> Any:
            cell = queue.pop()
            start(cell)
            future = client.submit(
                cell_in_worker,
                cell.settings,
                None if gpus else 1,
                key=f"onepair-cell-{cell.key}",
                pure=False,
                resources=resources,
            )
            pending[future] = cell
            return future

        flow = as_completed([submit() for _ in range(min(slots, len(queue)))])
        try:
            for future in flow:
                cell = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as error:  # e.g. the cell killed too many workers
                    outcome = Failure(f"{type(error).__name__}: {error}")
                yield cell, outcome
                if queue:
                    flow.add(submit())
        finally:
            for future in pending:
                future.cancel()


def run_study(
    grid: Grid,
    folder: str | Path,
    workers: int = 0,
    scheduler: str | None = None,
    gpus: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run the cells of ``grid`` that ``folder``'s store lacks; returns counts by state."""
    if workers < 0:
        raise ValueError(f"workers is {workers}; expected >= 0 (0: run in this process)")
    if workers and scheduler:
        raise ValueError("give either workers (a local pool) or scheduler (Dask), not both")
    store = Store(folder)
    try:
        store.add_grid(grid)
        cells = grid.cells()
        states = store.states()
        store.forget_running([c.key for c in cells if states.get(c.key) == "running"])
        todo = [c for c in cells if states.get(c.key) != "done"]
        say(f"{len(cells)} cells: {len(cells) - len(todo)} done, {len(todo)} to run")
        if scheduler:
            run = dask(todo, store.start, scheduler, gpus)
        elif workers:
            run = pool(todo, store.start, workers)
        else:
            run = sequential(todo, store.start)
        started: list[str] = []
        try:
            for n, (cell, outcome) in enumerate(run, 1):
                if isinstance(outcome, Failure):
                    store.fail(cell, outcome.error)
                    say(
                        f"[{n}/{len(todo)}] {describe(grid, cell)}: failed: "
                        f"{outcome.error.splitlines()[0]}"
                    )
                else:
                    store.finish(cell, outcome)
                    say(
                        f"[{n}/{len(todo)}] {describe(grid, cell)}: {outcome['psnr']:.2f} dB "
                        f"({outcome['seconds_total']:.0f} s)"
                    )
        except BaseException:
            started = [k for k, s in store.states().items() if s == "running"]
            store.forget_running(started)
            raise
        counts = {"done": 0, "failed": 0}
        now = store.states()
        for cell in cells:
            state = now.get(cell.key, "pending")
            counts[state] = counts.get(state, 0) + 1
        return counts
    finally:
        store.close()


def describe(grid: Grid, cell: Cell) -> str:
    """The cell by its factor levels: ``receptive_field=9 seed=1``."""
    return " ".join(f"{k}={cell.settings[k]}" for k in grid.factors) or "the cell"
