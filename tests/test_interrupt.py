"""Nothing is lost on interruption: kills, corrupted checkpoints, unusable output folders.

A real ``onepair fit`` is killed with SIGKILL at seeded random moments and
resumed; its final weights must equal an uninterrupted fit's. The child runs
the CLI unchanged, with two observers: each training step writes "." to
stdout when it draws its crops, and each checkpoint "w" when it starts being
written, so the test knows how far the fit had got and can kill it mid-write.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_FIT, TINY_MODEL
from onepair import checkpoint, verified
from onepair.crops import CropSampler
from onepair.fit import fit
from onepair.pairs import Pair
from onepair.targets import load_target

CONFIG = replace(TINY_FIT, steps=30, checkpoint_every=10)
STEPS, EVERY = CONFIG.steps, 5  # the CLI checkpoints more often: a setting resuming may change
FLAGS = ["--preset", "unet", "--depth", "2", "--width", "8", "--linear-kernel", "7"]
FLAGS += ["--steps", str(STEPS)]
FLAGS += ["--batch-size", "4", "--crop", "32", "--checkpoint-every", str(EVERY)]
FLAGS += ["--val-every", "10", "--threads", "1", "--quiet", "--device", "cpu"]
PROBE = """
import os, sys
from onepair import checkpoint, crops
sample, write = crops.CropSampler.sample, checkpoint.write_verified
def announced(self, *args, **kwargs):
    os.write(1, b".")
    return sample(self, *args, **kwargs)
def writing(*args, **kwargs):
    os.write(1, b"w")
    return write(*args, **kwargs)
crops.CropSampler.sample, checkpoint.write_verified = announced, writing
from onepair.cli import main
sys.argv = ["onepair", *sys.argv[1:]]
main()
"""
RUN_FILES = ["config.json", "history.csv", "metrics.json", "weights.safetensors"]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """PNGs of a blur pair, the pair as ``onepair fit`` reads them, an uninterrupted fit's weights.

    FLAGS are TINY_MODEL and CONFIG but for settings a resumption may change.
    """
    from onepair.images import save_image
    from onepair.samples import read, sample

    folder = tmp_path_factory.mktemp("example")
    x = sample("astronaut")[100:196, 180:260].copy()
    save_image(folder / "in.png", x, bit_depth=16)
    save_image(folder / "out.png", load_target("gaussian-blur:sigma=1.5")(x), bit_depth=16)
    pair = Pair.of(read(str(folder / "in.png")), read(str(folder / "out.png")))
    reference = fit(pair, TINY_MODEL, CONFIG, show_progress=False)
    return folder, pair, reference.network.state_dict()


def command(folder: Path, run: Path, *extra: str) -> list[str]:
    """The ``onepair fit`` command line, run by the observing PROBE."""
    files = [str(folder / "in.png"), str(folder / "out.png")]
    return [sys.executable, "-c", PROBE, "fit", *files, "-o", str(run), *FLAGS, *extra]


def verified_steps(run: Path) -> dict[str, int]:
    """Step of each checkpoint file in ``run`` that verifies (without repairing anything)."""
    steps = {}
    for name in (checkpoint.NAME, checkpoint.PREV):
        if (run / name).is_file():
            steps[name] = verified.verify(run / name)[0]["state"]["step"]
    return steps


def kill_and_resume(folder: Path, run: Path, kills: list[tuple[int, float, bool]]) -> list[str]:
    """Kill the fit at each (advance, delay, mid_write), resume it, let the last run finish.

    A kill comes ``delay`` seconds after step ``advance`` past the resumed one
    began or, with ``mid_write``, after the next checkpoint write began.
    Checks after every kill: only complete, verified checkpoints (and at most
    our temporary file) are on disk, the resumption starts at the newest one,
    and at most one checkpoint interval of steps is lost. Returns one note per
    kill.
    """
    base, notes = 0, []
    for advance, delay, mid_write in kills:
        process = subprocess.Popen(
            command(folder, run, *(["--resume"] if notes else [])),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        last = STEPS - 2 * EVERY - 1 if mid_write else STEPS - 3  # the fit must not end first
        started, goal = 0, min(base + advance, last) - base
        while started < goal and (byte := process.stdout.read(1)):
            started += byte == b"."
        while mid_write and (byte := process.stdout.read(1)) not in (b"w", b""):
            started += byte == b"."
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        started += process.stdout.read().count(b".")
        error = process.stderr.read().decode()
        assert process.returncode == -signal.SIGKILL, f"the fit ended before the kill: {error}"
        if base:
            assert f"resuming at step {base} of {STEPS} from {run}" in error
        at_kill = base + started  # steps begun; all but the last one have finished
        names = {p.name for p in run.iterdir()}
        temps = {n for n in names if n == f".{checkpoint.NAME}.tmp{process.pid}"}
        assert names - temps <= {checkpoint.NAME, checkpoint.PREV}, names
        on_disk = verified_steps(run)  # raises if a non-temporary checkpoint does not verify
        newest = max(on_disk.values(), default=0)
        assert newest in {EVERY * ((at_kill - 1) // EVERY), EVERY * (at_kill // EVERY)}
        assert at_kill - newest <= EVERY  # at most one checkpoint interval lost
        when = f"{delay * 1000:.1f} ms after a checkpoint write began, in" if mid_write else "in"
        notes.append(f"killed {when} step {at_kill}: on disk {on_disk}, temporary {sorted(temps)}")
        base = newest
    finished = subprocess.run(command(folder, run, "--resume"), capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    if base:
        assert f"resuming at step {base} of {STEPS} from {run}" in finished.stderr
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES  # no checkpoint, no temp left
    return notes


def same_weights(run: Path, reference: dict[str, torch.Tensor]) -> None:
    weights = load_file(str(run / "weights.safetensors"))
    assert weights.keys() == reference.keys()
    for key in weights:
        torch.testing.assert_close(weights[key], reference[key], rtol=0, atol=0)


def test_killed_at_a_random_moment_resumes_and_matches_an_uninterrupted_fit(tmp_path, example):
    folder, _, reference = example
    rng = random.Random(2)
    kills = [(rng.randrange(EVERY + 2, STEPS - EVERY), rng.uniform(0, 0.05), False)]
    notes = kill_and_resume(folder, tmp_path / "run", kills)
    print("\n".join(notes))
    same_weights(tmp_path / "run", reference)


@pytest.mark.slow
def test_ten_random_kills_lose_nothing(tmp_path, example):
    """Every second kill comes 0-10 ms after a checkpoint write began: in it or just after."""
    folder, _, reference = example
    rng = random.Random(10)
    kills = [(rng.randrange(1, 2 * EVERY), rng.uniform(0, 0.01), k % 2 == 1) for k in range(10)]
    notes = kill_and_resume(folder, tmp_path / "run", kills)
    print("\n".join(notes))
    same_weights(tmp_path / "run", reference)


# ---------------------------------------------------------------- corrupted checkpoints, in process


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, example):
    """The example's fit stopped in step 25: checkpoints of steps 20 and 10."""
    _, pair, reference = example
    run = tmp_path_factory.mktemp("interrupted") / "run"
    calls = {"n": 0}
    sample = CropSampler.sample

    def stopped(self, *args):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return sample(self, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CropSampler, "sample", stopped)
        with pytest.raises(KeyboardInterrupt):
            fit(pair, TINY_MODEL, CONFIG, out_dir=run, show_progress=False)
    assert verified_steps(run) == {checkpoint.NAME: 20, checkpoint.PREV: 10}
    return pair, run, reference


def resume_copy(interrupted, tmp_path, damage=None):
    """Copy the interrupted run, damage it, resume it; return the imitator."""
    pair, run, _ = interrupted
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    if damage is not None:
        damage(copy)
    return fit(pair, TINY_MODEL, CONFIG, out_dir=copy, resume=True, show_progress=False)


def truncate(run: Path) -> None:
    path = run / checkpoint.NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_last_byte(run: Path) -> None:  # the last byte of the tensor payload
    data = bytearray((run / checkpoint.NAME).read_bytes())
    data[-1] ^= 0x01
    (run / checkpoint.NAME).write_bytes(bytes(data))


def edit_metadata(run: Path) -> None:  # still valid JSON and safetensors: "step": 20 -> 29
    data = (run / checkpoint.NAME).read_bytes()
    old, new = b'\\"step\\": 20, \\"elapsed', b'\\"step\\": 29, \\"elapsed'
    assert data.count(old) == 1
    (run / checkpoint.NAME).write_bytes(data.replace(old, new))


@pytest.mark.parametrize(
    "damage, failure",
    [
        (truncate, "unreadable"),
        (flip_last_byte, "tensor SHA-256 mismatch"),
        (edit_metadata, "metadata SHA-256 mismatch"),
    ],
)
def test_corrupted_newest_checkpoint_falls_back_to_the_previous_one(
    interrupted, tmp_path, caplog, damage, failure
):
    with caplog.at_level(logging.INFO, logger="onepair"):
        resumed = resume_copy(interrupted, tmp_path, damage)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"checkpoint {tmp_path / 'run' / checkpoint.NAME} is corrupted: ")
    assert failure in warnings[0]
    assert warnings[0].endswith(f"; falling back to {tmp_path / 'run' / checkpoint.PREV}")
    assert "resuming at step 10 of 30" in caplog.text
    for key, value in interrupted[2].items():  # the fit is still the uninterrupted one
        torch.testing.assert_close(resumed.network.state_dict()[key], value, rtol=0, atol=0)


def test_intact_checkpoint_resumes_at_the_newest_step_without_warning(
    interrupted, tmp_path, caplog
):
    with caplog.at_level(logging.INFO, logger="onepair"):
        resumed = resume_copy(interrupted, tmp_path)
    assert "resuming at step 20 of 30" in caplog.text and "corrupted" not in caplog.text
    for key, value in interrupted[2].items():
        torch.testing.assert_close(resumed.network.state_dict()[key], value, rtol=0, atol=0)


def test_both_checkpoints_corrupted_is_a_clear_error(interrupted, tmp_path):
    def both(run):
        truncate(run)
        (run / checkpoint.PREV).write_bytes(b"\x00" * 100)

    with pytest.raises(ValueError) as info:
        resume_copy(interrupted, tmp_path, both)
    assert str(info.value).startswith(f"no usable checkpoint in {tmp_path / 'run'}: ")
    assert "checkpoint.safetensors: unreadable" in str(info.value)
    assert "checkpoint.prev.safetensors: unreadable" in str(info.value)
    assert str(info.value).endswith(
        "delete checkpoint.safetensors and checkpoint.prev.safetensors to start over"
    )


class Crash(BaseException):
    """Stands for a kill at one point of writing a checkpoint."""


@pytest.mark.parametrize("point", ["writing", "before rotating", "between renames", "after"])
def test_a_kill_at_any_point_of_a_save_leaves_a_verified_checkpoint(tmp_path, monkeypatch, point):
    network = torch.nn.Conv2d(1, 2, 3)
    optimizer = torch.optim.Adam(network.parameters())
    generator = torch.Generator().manual_seed(0)
    for step in (10, 20):
        state = checkpoint.State(step=step)
        checkpoint.save(tmp_path, network, optimizer, generator, TINY_MODEL, TINY_FIT, state)
    renames, real_replace, real_fsync = [], os.replace, os.fsync

    def replace_then_crash(source, target):
        if point == "between renames" and renames:
            raise Crash
        renames.append(target)
        real_replace(source, target)

    def fsync_then_crash(fd):
        if point == "writing":  # half of the temporary file is written
            os.ftruncate(fd, 50)
            raise Crash
        real_fsync(fd)
        if point == "before rotating" and not renames:
            raise Crash

    monkeypatch.setattr(checkpoint.os, "replace", replace_then_crash)
    monkeypatch.setattr(checkpoint.os, "fsync", fsync_then_crash)
    state = checkpoint.State(step=30)
    if point == "after":
        checkpoint.save(tmp_path, network, optimizer, generator, TINY_MODEL, TINY_FIT, state)
    else:
        with pytest.raises(Crash):
            checkpoint.save(tmp_path, network, optimizer, generator, TINY_MODEL, TINY_FIT, state)
    monkeypatch.undo()
    expected = {
        "writing": {checkpoint.NAME: 20, checkpoint.PREV: 10},
        "before rotating": {checkpoint.NAME: 20, checkpoint.PREV: 10},
        "between renames": {checkpoint.PREV: 20},
        "after": {checkpoint.NAME: 30, checkpoint.PREV: 20},
    }[point]
    assert verified_steps(tmp_path) == expected
    loaded = checkpoint.load(tmp_path, network, optimizer, generator, TINY_MODEL, TINY_FIT)
    assert loaded.step == max(expected.values())
    assert (tmp_path / checkpoint.NAME).is_file()  # a lone previous one is the newest again


def test_stale_temporary_files_are_removed_and_folders_with_either_file_resume(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(dead.stdout)
    run = tmp_path / "run"
    run.mkdir()
    stale, live = run / f".{checkpoint.NAME}.tmp{pid}", run / f".{checkpoint.NAME}.tmp{os.getpid()}"
    stale.write_bytes(b"half a checkpoint")
    (run / f".weights.safetensors.tmp{pid}").write_bytes(b"half the weights")
    assert checkpoint.prepare_run_dir(run, resume=False) is False  # killed before its first one
    assert list(run.iterdir()) == []
    live.write_bytes(b"being written by a running process")
    with pytest.raises(FileExistsError, match="is not empty"):
        checkpoint.prepare_run_dir(run, resume=False)
    live.unlink()
    for name in (checkpoint.NAME, checkpoint.PREV):
        (run / name).write_bytes(b"x")
        with pytest.raises(FileExistsError, match="holds an interrupted fit; pass --resume"):
            checkpoint.prepare_run_dir(run, resume=False)
        assert checkpoint.prepare_run_dir(run, resume=True) is False
        checkpoint.remove(run)
        assert list(run.iterdir()) == []


def test_teacher_checkpoint_is_verified_and_falls_back(tmp_path, caplog):
    from onepair.teacher_store import restore_checkpoint, store_checkpoint

    network = torch.nn.Conv2d(1, 1, 3)
    optimizer = torch.optim.Adam(network.parameters())
    criterion = SimpleNamespace(discriminator=None, optimizer=None)
    generator = torch.Generator().manual_seed(0)
    settings = {"task": "stain", "steps": 8}
    kept = {}
    for step in (2, 4):
        network.weight.data.add_(1.0)
        kept[step] = network.weight.detach().clone()
        state = checkpoint.State(step=step, elapsed=0.5, history=[{"step": step}])
        store_checkpoint(tmp_path, settings, network, optimizer, criterion, generator, state)
    flip_last_byte(tmp_path)
    with caplog.at_level(logging.WARNING, logger="onepair"):
        state = restore_checkpoint(tmp_path, settings, network, optimizer, criterion, generator)
    assert state.step == 2 and torch.equal(network.weight, kept[2])
    assert "checkpoint.safetensors is corrupted: tensor SHA-256 mismatch" in caplog.text
    truncate(tmp_path)  # now the only checkpoint, the former previous one, is bad too
    with pytest.raises(ValueError, match="no usable checkpoint in .*checkpoint.safetensors: unr"):
        restore_checkpoint(tmp_path, settings, network, optimizer, criterion, generator)


# ---------------------------------------------------------------- output folders that cannot work


def test_unwritable_output_folder_fails_before_training(tmp_path, monkeypatch, photo):
    """Folders even root cannot create (under a regular file; in /proc), and a read-only one."""
    pair = Pair.of(photo, photo)
    monkeypatch.setattr(CropSampler, "sample", lambda *a: pytest.fail("training started"))
    (tmp_path / "a-file").write_text("not a folder")
    unwritable = {tmp_path / "a-file" / "run": r"\[Errno 20\] Not a directory"}
    if Path("/proc/self").is_dir():  # Linux: procfs makes no folders for anyone
        unwritable[Path("/proc/onepair-run")] = r"\[Errno 2\]"
    if os.geteuid() != 0:  # root may write to a folder with mode 0o555
        (tmp_path / "locked").mkdir(mode=0o555)
        unwritable[tmp_path / "locked" / "run"] = r"\[Errno 13\] Permission denied"
    for out, error in unwritable.items():
        with pytest.raises(
            PermissionError, match=f"^cannot write to {re.escape(str(out))}: {error}"
        ):
            fit(pair, TINY_MODEL, TINY_FIT, out_dir=out, show_progress=False)


def test_full_disk_is_refused_with_the_free_and_needed_bytes(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    need = checkpoint.estimate_bytes(10_000)
    assert need == 3 * (16 * 10_000 + checkpoint.SLACK) + 4 * 10_000
    with pytest.raises(ValueError) as info:
        checkpoint.prepare_run_dir(tmp_path / "run", resume=False, need_bytes=need)
    assert str(info.value) == (
        f"{tmp_path / 'run'} has 5,000 bytes free but the run needs about {need:,} for its "
        "checkpoints and weights; free some space or choose another folder"
    )
    assert checkpoint.prepare_run_dir(tmp_path / "ok", resume=False, need_bytes=5000) is False
    # resuming counts the checkpoints it will replace as free
    (tmp_path / "run" / checkpoint.NAME).write_bytes(b"x" * 3000)
    with pytest.raises(ValueError, match="has 5,000 bytes free but the run needs about 8,001"):
        checkpoint.prepare_run_dir(tmp_path / "run", resume=True, need_bytes=8001)
    assert checkpoint.prepare_run_dir(tmp_path / "run", resume=True, need_bytes=8000) is False


def test_fit_refuses_a_full_disk_before_training(tmp_path, monkeypatch, photo):
    from onepair.models import build

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    monkeypatch.setattr(CropSampler, "sample", lambda *a: pytest.fail("training started"))
    need = checkpoint.estimate_bytes(build(TINY_MODEL, 3, 3, 1).num_params())
    with pytest.raises(ValueError, match=f"has 5,000 bytes free but the run needs about {need:,}"):
        fit(
            Pair.of(photo, photo),
            TINY_MODEL,
            TINY_FIT,
            out_dir=tmp_path / "run",
            show_progress=False,
        )


def test_a_resumed_optimizer_runs_its_update_as_this_device_does(tmp_path):
    """A checkpoint keeps Adam's moments, not how the saving device ran the update."""
    network = torch.nn.Conv2d(1, 2, 3)
    saving = torch.optim.Adam(network.parameters(), foreach=True)
    network(torch.rand(1, 1, 5, 5)).sum().backward()
    saving.step()
    generator = torch.Generator().manual_seed(0)
    state = checkpoint.State(step=1)
    checkpoint.save(tmp_path, network, saving, generator, TINY_MODEL, TINY_FIT, state)
    resuming = torch.optim.Adam(network.parameters(), foreach=False)
    checkpoint.load(tmp_path, network, resuming, generator, TINY_MODEL, TINY_FIT)
    group = resuming.param_groups[0]
    assert group["foreach"] is False and group["fused"] is None
    moments = resuming.state[network.weight]["exp_avg"]
    torch.testing.assert_close(moments, saving.state[network.weight]["exp_avg"])
