"""Studies: grid checking, a 12-cell grid on a process pool and on a real Dask cluster
(a worker killed mid-cell), a killed driver resumed, export and plot."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from onepair.cli import app
from onepair.study import Grid, Store, load_grid, parse_grid, run_study, shipped_grids

# 12 cells: 3 receptive fields x 2 targets x 2 seeds, each a fit of a few steps.
GRID = """
[study]
example_size = 48
held_out = ["builtin:coffee", "builtin:camera"]
held_out_size = 48
architecture = "plain"
width = 8
steps = {steps}
seconds = {seconds}
crop = 24
batch_size = 4

[factors]
receptive_field = [3, 5, 9]
target = ["gaussian-blur:sigma=2", "noise:sigma=25|tv-denoise"]
seed = [0, 1]
"""


def grid_file(tmp_path: Path, steps: int = 30, seconds: float = 30.0) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(GRID.format(steps=steps, seconds=seconds))
    return path


def test_a_12_cell_grid_runs_on_two_worker_processes(tmp_path: Path) -> None:
    grid = load_grid(grid_file(tmp_path))
    assert len(grid.cells()) == 12
    lines: list[str] = []
    counts = run_study(grid, tmp_path / "study", workers=2, say=lines.append)
    assert counts == {"done": 12, "failed": 0}
    rows = Store(tmp_path / "study").rows()
    assert len({row["key"] for row in rows}) == 12
    assert len({row["worker"] for row in rows}) == 2  # both processes took cells
    blur = {
        r["receptive_field"]: r["psnr"]
        for r in rows
        if r["target"] == "gaussian-blur:sigma=2" and r["seed"] == 0
    }
    assert blur[3] < blur[5] < blur[9]  # a wider imitator copies a blur better
    for row in rows:
        assert row["queries"] == 1 + 2 and row["num_params"] > 0
        assert row["imitator_receptive_field"] == row["receptive_field"]
    # a second run finds nothing to do
    assert run_study(grid, tmp_path / "study", say=lines.append) == counts
    assert lines[-1] == "12 cells: 12 done, 0 to run"


def test_a_killed_study_reruns_only_the_missing_cells(tmp_path: Path) -> None:
    grid, study = grid_file(tmp_path, steps=10**6, seconds=1.0), tmp_path / "study"
    onepair = Path(sys.executable).parent / "onepair"
    command = [str(onepair), "study", "run", str(grid), "-o", str(study)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done: dict[str, float] = {}
    while len(done) < 4 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        if (study / "study.sqlite").exists():
            with sqlite3.connect(study / "study.sqlite") as db:
                done = dict(db.execute("SELECT key, finished FROM cells WHERE state='done'"))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 4 <= len(done) < 12, "the study was not killed in the middle"
    store = Store(study)
    assert store.status()["running"] <= 1  # the cell it was fitting when killed
    store.close()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    kept = len(done)
    assert f"12 cells: {kept} done, {12 - kept} to run" in rerun.stderr
    rows = {row["key"]: row for row in Store(study).rows()}
    assert len(rows) == 12
    with sqlite3.connect(study / "study.sqlite") as db:
        finished = dict(db.execute("SELECT key, finished FROM cells"))
    assert all(finished[key] == when for key, when in done.items())  # not redone


def test_the_store_appears_whole_and_is_never_replaced(tmp_path: Path, monkeypatch) -> None:
    from onepair.study import store as store_module

    path = tmp_path / "study" / store_module.NAME
    seen: list[set[str]] = []
    link = os.link

    def watching_link(source, destination):  # what a reader would find at that instant
        with contextlib.closing(sqlite3.connect(source)) as db:
            seen.append({row[0] for row in db.execute("SELECT name FROM sqlite_master")})
        link(source, destination)

    monkeypatch.setattr(store_module.os, "link", watching_link)
    store = Store(path.parent)
    assert seen == [{"cells", "grids", "sqlite_autoindex_cells_1"}]
    store.add_grid(Grid({"steps": 1}, {"seed": [0]}))
    store_module._create(path)  # a second driver starting late keeps the first's rows
    assert store.last_grid() is not None
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".draft")]

    def no_links(source, destination):
        raise PermissionError("this file system has no hard links")

    monkeypatch.setattr(store_module.os, "link", no_links)
    Store(tmp_path / "other").close()
    assert Store(tmp_path / "other", create=False).status()["done"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """A real Dask scheduler and two workers, each its own process, on loopback."""
    pytest.importorskip("distributed", reason="Dask is the optional extra onepair[cluster]")
    dask = Path(sys.executable).parent / "dask"
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 (closed below)
    processes = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    ]
    for _ in range(2):
        processes.append(
            subprocess.Popen(
                [dask, "worker", address, "--nthreads", "1", "--no-dashboard"],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        )
    from distributed import Client

    client = Client(address, timeout="60s")
    try:
        client.wait_for_workers(2, timeout=60)
        yield address, client
    finally:
        client.close()
        for process in processes:  # the whole group: nanny and worker
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_a_12_cell_grid_runs_on_a_dask_cluster_and_survives_a_killed_worker(
    tmp_path: Path, dask_cluster
) -> None:
    address, client = dask_cluster
    grid = load_grid(grid_file(tmp_path, steps=10**6, seconds=2.0))
    result: dict = {}

    def drive() -> None:
        try:
            result["counts"] = run_study(
                grid, tmp_path / "study", scheduler=address, say=lambda _: None
            )
        except BaseException as error:  # reported by the assertion below
            result["error"] = error

    driver = threading.Thread(target=drive)
    driver.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and driver.is_alive():
        time.sleep(0.2)
        for worker, keys in client.processing().items():
            if keys:  # a cell is running there: kill that worker process
                pids = client.run(os.getpid, workers=[worker])
                victim = (pids[worker], [str(k) for k in keys])
                time.sleep(0.5)  # well inside the 2 s fit
                os.kill(victim[0], signal.SIGKILL)
                break
    driver.join(timeout=300)
    assert victim is not None, "no cell was seen running on a worker"
    assert "error" not in result, result.get("error")
    assert result["counts"] == {"done": 12, "failed": 0}
    rows = {row["key"]: row for row in Store(tmp_path / "study").rows()}
    assert len(rows) == 12
    killed_cell = victim[1][0].removeprefix("onepair-cell-")
    assert rows[killed_cell]["state"] == "done"  # run again elsewhere, nothing lost
    assert not rows[killed_cell]["worker"].endswith(f":{victim[0]}")
    assert all(
        not row["worker"].endswith(f":{victim[0]}") or key != killed_cell
        for key, row in rows.items()
    )


def test_scheduler_without_dask_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    grid = load_grid(grid_file(tmp_path))
    with pytest.raises(ImportError, match=r"pip install 'onepair\[cluster\]'"):
        run_study(grid, tmp_path / "study", scheduler="tcp://127.0.0.1:1", say=lambda _: None)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[factors]\nreceptive_feld = [3, 5]\n[study]\ntarget='identity'",
            "unknown setting factors.receptive_feld; known: target",
        ),
        ("[study]\ntarget = 'identity'\nwidht = 8", "unknown setting study.widht"),
        ("[stdy]\ntarget = 'identity'", "unknown table [stdy]; allowed: study, factors, full"),
        (
            "[study]\ntarget = 'identity'\n[factors]\nreceptive_field = [3, 4]",
            "factors.receptive_field[1] is 4; expected an odd integer >= 3",
        ),
        ("[study]\ntarget = 'identity'\nseconds = 'long'", "study.seconds is 'long'; expected"),
        ("[study]\ntarget = 'identity'\nloss = 'l3'", "study.loss is 'l3'; expected one of"),
        ("[study]\ntarget = 'identity'\n[factors]\nseed = []", "factors.seed must be a non-empty"),
        ("[study]\ntarget = 'identity'\n[factors]\nseed = [0, 0]", "factors.seed repeats"),
        (
            "[study]\ntarget = 'no-such-model'",
            "target 'no-such-model': unknown target 'no-such-model'",
        ),
        ("[study]\nwidth = 8", "no target: set study.target or factors.target"),
        ("[study]\ntarget = 'identity'\n[full]\nsteps = -1", "full.steps is -1"),
        (
            "[study]\ntarget = 'identity'\nwidth = 8\n[factors]\nwidth = [8, 16]",
            "width is both fixed in [study] and a factor",
        ),
    ],
)
def test_bad_grids_fail_before_any_work_naming_the_key(tmp_path, toml, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError) as caught:
        load_grid(path)
    assert message in str(caught.value)
    result = CliRunner().invoke(app, ["study", "run", str(path), "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "s").exists()


def test_untrained_teachers_are_refused_with_the_command_that_trains_them(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEPAIR_HOME", str(tmp_path))
    data = {"study": {"target": "teacher-denoiser", "target_architecture": "attention"}}
    with pytest.raises(ValueError, match="onepair zoo train-teacher denoiser .*attention"):
        parse_grid(data)


def test_full_table_overrides_settings_and_levels() -> None:
    data = {
        "study": {"target": "identity", "seconds": 10.0},
        "factors": {"seed": [0]},
        "full": {"seconds": 300.0, "seed": [0, 1, 2]},
    }
    small, full = parse_grid(data), parse_grid(data, full=True)
    assert small.fixed["seconds"] == 10.0 and len(small.cells()) == 1
    assert full.fixed["seconds"] == 300.0 and len(full.cells()) == 3


def test_shipped_grids_are_valid() -> None:
    grids = shipped_grids()
    assert {"receptive-field", "model-size", "example-size", "loss", "architecture"} <= set(grids)
    assert {"receptive-field-unet", "model-size-unet", "target-training"} <= set(grids)
    for name, path in grids.items():
        for full in (False, True):
            grid = load_grid(path, full=full, check_targets=False)
            assert grid.cells(), name


def test_cli_status_export_and_plot(tmp_path: Path) -> None:
    runner = CliRunner()
    study = tmp_path / "study"
    result = runner.invoke(app, ["study", "run", str(grid_file(tmp_path)), "-o", str(study)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["study", "status", str(study)])
    assert "done: 12 running: 0 failed: 0 pending: 0" in result.output
    csv_path = tmp_path / "cells.csv"
    assert runner.invoke(app, ["study", "export", str(study), "-o", str(csv_path)]).exit_code == 0
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 13 and "receptive_field" in lines[0] and "psnr" in lines[0]
    result = runner.invoke(app, ["study", "plot", str(study)])
    assert result.exit_code == 0, result.output
    png = study / "plot-receptive_field.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["study", "table", str(study)])
    assert result.exit_code == 0 and result.output.startswith(
        "| receptive_field \u2192 | 3 | 5 | 9 |"
    )
    assert len(result.output.splitlines()) == 2 + 2  # header, rule, one line per target
    result = runner.invoke(app, ["study", "plot", str(study), "--x", "nope"])
    assert result.exit_code == 2 and "no column 'nope'" in result.output
    result = runner.invoke(app, ["study", "status", str(tmp_path / "none")])
    assert result.exit_code == 2 and "holds no study" in result.output


def test_the_linear_path_never_reaches_beyond_the_imitators_receptive_field() -> None:
    from onepair.study.cell import model_config
    from onepair.study.grid import SETTINGS

    base = {key: default for key, (default, _, _) in SETTINGS.items()}
    assert model_config({**base, "architecture": "plain", "receptive_field": 9}).linear_kernel == 9
    assert model_config({**base, "architecture": "unet", "depth": 1}).linear_kernel == 3
    assert model_config({**base, "architecture": "unet", "depth": 3}).linear_kernel == 15


def test_series_average_seeds_and_fold_a_factor_into_a_result_axis() -> None:
    from onepair.study.plot import series

    rows = [
        {
            "target": "identity",
            "depth": d,
            "seed": s,
            "imitator_receptive_field": rf,
            "psnr": 30.0 + d + s,
        }
        for d, rf in ((1, 3), (2, 11))
        for s in (0, 1)
    ]
    by_factor = series(rows, "depth", ["target", "depth", "seed"])
    assert by_factor == {"identity": [(1.0, 31.5, 0.5, 2), (2.0, 32.5, 0.5, 2)]}
    # the receptive field tells the depth: one line, not one per depth
    by_result = series(rows, "imitator_receptive_field", ["target", "depth", "seed"])
    assert by_result == {"identity": [(3.0, 31.5, 0.5, 2), (11.0, 32.5, 0.5, 2)]}
    # text levels (architectures) keep the grid's order
    rows = [
        {"target": "identity", "architecture": a, "seed": 0, "psnr": p}
        for a, p in (("unet", 30.0), ("plain", 29.0), ("attention", 31.0))
    ]
    assert [p[0] for p in series(rows, "architecture", ["architecture"])["identity"]] == [
        "unet",
        "plain",
        "attention",
    ]
