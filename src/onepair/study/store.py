"""The study's store: an embedded SQLite database in the study folder.

One row per cell that was started: its key, its settings, its state
(``running``, ``done`` or ``failed``), its result or error, the attempts it
took and where it ran. Each change is one committed transaction (write-ahead
log, synchronous commits), so a crash or a kill loses at most the cells that
were running; they show as ``running`` until the next run takes them up again.
Only the driver writes; workers return their rows to it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from onepair.study.grid import Cell, Grid

NAME = "study.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    worker TEXT
);
CREATE TABLE IF NOT EXISTS grids (source TEXT, grid TEXT, added REAL);
"""


def _create(path: Path) -> None:
    """Make the database beside ``path`` and link it into place whole.

    A reader (``onepair study status``, a watching script) that finds the file
    thus always finds its tables, and of two drivers starting at once the
    second opens the first's database instead of replacing it.
    """
    draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
    draft.unlink(missing_ok=True)
    db = sqlite3.connect(draft, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file
        db.executescript(SCHEMA)
    finally:
        db.close()
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: rename, unless one appeared
        if not path.exists():
            os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


class Store:
    """Open (or create) the store of the study folder ``folder``."""

    def __init__(self, folder: str | Path, create: bool = True):
        self.folder = Path(folder)
        path = self.folder / NAME
        if not create and not path.is_file():
            raise FileNotFoundError(f"{self.folder} holds no study ({NAME} is missing)")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)  # a store from before a table was added gains it

    def close(self) -> None:
        self.db.close()

    def add_grid(self, grid: Grid) -> None:
        """Record the grid a run was made for (``status`` counts its pending cells)."""
        text = json.dumps({"fixed": grid.fixed, "factors": grid.factors}, sort_keys=True)
        with self.db:
            self.db.execute("INSERT INTO grids VALUES (?, ?, ?)", (grid.source, text, time.time()))

    def last_grid(self) -> Grid | None:
        row = self.db.execute("SELECT source, grid FROM grids ORDER BY added DESC").fetchone()
        if row is None:
            return None
        data = json.loads(row[1])
        return Grid(data["fixed"], data["factors"], row[0])

    def status(self) -> dict[str, int]:
        """Cells by state for the last grid run here: done, running, failed, pending."""
        states = self.states()
        grid = self.last_grid()
        keys = [c.key for c in grid.cells()] if grid else list(states)
        counts = {"done": 0, "running": 0, "failed": 0, "pending": 0}
        for key in keys:
            counts[states.get(key, "pending")] += 1
        return counts

    def states(self) -> dict[str, str]:
        """key -> state of every cell in the store."""
        return dict(self.db.execute("SELECT key, state FROM cells"))

    def start(self, cell: Cell) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO cells (key, settings, state, attempts, started) "
                "VALUES (?, ?, 'running', 1, ?) ON CONFLICT(key) DO UPDATE SET "
                "state='running', attempts=attempts + 1, started=excluded.started, error=NULL",
                (cell.key, json.dumps(cell.settings, sort_keys=True), time.time()),
            )

    def finish(self, cell: Cell, result: dict[str, Any]) -> None:
        with self.db:
            self.db.execute(
                "UPDATE cells SET state='done', result=?, finished=?, worker=? WHERE key=?",
                (json.dumps(result), time.time(), result.get("worker"), cell.key),
            )

    def fail(self, cell: Cell, error: str) -> None:
        with self.db:
            self.db.execute(
                "UPDATE cells SET state='failed', error=?, finished=? WHERE key=?",
                (error, time.time(), cell.key),
            )

    def forget_running(self, keys: Iterable[str]) -> None:
        """Cells that were running when the driver stopped: pending again."""
        with self.db:
            self.db.executemany(
                "DELETE FROM cells WHERE key=? AND state='running'", [(k,) for k in keys]
            )

    def rows(self, state: str | None = "done") -> list[dict[str, Any]]:
        """Settings and result of each cell in ``state`` (all when None), oldest first."""
        query = "SELECT key, settings, state, result, error, attempts, worker FROM cells"
        args: tuple = ()
        if state is not None:
            query, args = query + " WHERE state=?", (state,)
        rows = []
        for key, settings, st, result, error, attempts, worker in self.db.execute(
            query + " ORDER BY started", args
        ):
            row = {"key": key, "state": st, **json.loads(settings)}
            row.update(json.loads(result) if result else {})
            row.update({"error": error, "attempts": attempts, "worker": worker})
            rows.append(row)
        return rows

    def export_csv(self) -> str:
        """Every finished cell as CSV: settings, then results (lists as JSON)."""
        rows = self.rows("done")
        if not rows:
            return ""
        columns = list(dict.fromkeys(k for row in rows for k in row))
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            )
        return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A CSV field: lists (held-out images) as JSON."""
    return json.dumps(value) if isinstance(value, list) else value
