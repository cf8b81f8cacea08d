"""fit.py and imitator.py: training really learns, run folders, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_FIT, TINY_MODEL
from onepair.evaluate import evaluate
from onepair.fit import FitConfig, Schedule, fit, lr_at
from onepair.imitator import Imitator
from onepair.metrics import psnr
from onepair.models import PlainConfig, Skip
from onepair.pairs import Pair
from onepair.targets import load_target


@pytest.fixture
def blur_pair(photo):
    target = load_target("gaussian-blur:sigma=1.5")
    return Pair.of(photo, target(photo))


def test_lr_schedule_is_a_pure_function_of_progress():
    config = FitConfig(lr=1e-3, warmup=0.1, lr_min=0.01)
    assert lr_at(0.0, config) == 0.0
    assert lr_at(0.1, config) == pytest.approx(1e-3)
    assert lr_at(1.0, config) == pytest.approx(1e-5)
    values = [lr_at(p / 100, config) for p in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    step = FitConfig(lr=1.0, schedule=Schedule.MULTISTEP)
    assert [lr_at(p, step) for p in (0.0, 0.59, 0.6, 0.89, 0.9)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01]
    )


def test_training_lowers_the_loss_without_the_linear_path(blur_pair):
    model = replace(TINY_MODEL, skip=Skip.NONE)
    imitator = fit(blur_pair, model, replace(TINY_FIT, steps=150, holdout=0.0), show_progress=False)
    losses = [row["loss"] for row in imitator.history if "loss" in row]
    assert np.mean(losses[-3:]) < 0.1 * np.mean(losses[:2])
    untrained = fit(blur_pair, model, replace(TINY_FIT, steps=1, holdout=0.0), show_progress=False)
    before = psnr(untrained.apply(blur_pair.input), blur_pair.output)
    assert psnr(imitator.apply(blur_pair.input), blur_pair.output) > before + 6.0
    assert imitator.metrics["val_psnr"] is None  # nothing held out, nothing measured


def test_linear_target_is_imitated_to_high_psnr_on_other_images(blur_pair):
    model = replace(TINY_MODEL, linear_kernel=13)  # holds the blur's kernel (radius 4 sigma)
    imitator = fit(blur_pair, model, TINY_FIT, show_progress=False)
    evaluation = evaluate(
        imitator, "gaussian-blur:sigma=1.5", ["builtin:coffee", "builtin:chelsea"]
    )
    assert evaluation.mean("psnr") > 40.0
    assert evaluation.mean("psnr") > evaluation.mean("floor_psnr") + 10
    assert evaluation.queries == 2


def test_nonlinear_denoiser_beats_its_floor(photo):
    target = load_target("noise:sigma=25|median:size=3")
    x = target.degrade(photo, seed=0)
    imitator = fit(
        Pair.of(x, target(x)), TINY_MODEL, replace(TINY_FIT, steps=200), show_progress=False
    )
    evaluation = evaluate(imitator, target, ["builtin:coffee"])
    assert evaluation.mean("psnr") > evaluation.mean("floor_psnr") + 5.0
    assert imitator.metrics["val_psnr"] > imitator.metrics["val_floor_psnr"] + 5.0


def test_channel_change_and_super_resolution_pairs(photo):
    gray = photo[..., :1]
    stain = Pair.of(gray, np.concatenate([gray, 1 - gray, gray**2], axis=2))
    imitator = fit(stain, TINY_MODEL, TINY_FIT, show_progress=False)
    assert imitator.apply(gray).shape == (96, 80, 3)
    sr = Pair.of(gray, np.repeat(np.repeat(gray, 2, 0), 2, 1))
    imitator = fit(sr, PlainConfig(receptive_field=5, width=8), TINY_FIT, show_progress=False)
    assert imitator.apply(gray[:20, :30]).shape == (40, 60, 1)
    assert imitator.metrics["val_psnr"] > 35  # nearest up-scaling is linear: exact


def test_run_folder_round_trip_gives_identical_outputs(tmp_path, blur_pair, photo):
    imitator = fit(blur_pair, TINY_MODEL, TINY_FIT, out_dir=tmp_path / "run", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(
        ["config.json", "weights.safetensors", "metrics.json", "history.csv"]
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == {
        "architecture": "unet",
        "depth": 2,
        "width": 8,
        "kernel_size": 3,
        "convs_per_level": 1,
        "growth": 2,
        "unshuffle": 1,
        "skip": "linear",
        "linear_kernel": 7,
        "linear_bins": 1,
        "activation": "leaky-relu",
    }
    assert (config["in_channels"], config["out_channels"], config["scale"]) == (3, 3, 1)
    assert config["fit"]["seed"] == 0 and config["onepair_version"]
    loaded = Imitator.load(tmp_path / "run", device="cpu")
    np.testing.assert_array_equal(loaded.apply(photo), imitator.apply(photo))
    assert loaded.metrics == imitator.metrics
    assert len(loaded.history) == len(imitator.history)


def test_same_seed_same_result_different_seed_different(blur_pair, photo):
    model, config = replace(TINY_MODEL, skip=Skip.NONE), replace(TINY_FIT, steps=20, holdout=0)
    a = fit(blur_pair, model, config, show_progress=False)
    b = fit(blur_pair, model, config, show_progress=False)
    c = fit(blur_pair, model, replace(config, seed=1), show_progress=False)
    np.testing.assert_array_equal(a.apply(photo), b.apply(photo))
    assert not np.array_equal(a.apply(photo), c.apply(photo))


def test_early_stopping_and_best_weights(blur_pair):
    config = replace(TINY_FIT, steps=400, lr=0.05, patience=2, val_every=5)
    imitator = fit(blur_pair, TINY_MODEL, config, show_progress=False)
    vals = [r["val_psnr"] for r in imitator.history if "val_psnr" in r]
    assert imitator.metrics["stopped_early"] and imitator.metrics["steps"] < 400
    assert imitator.metrics["val_psnr"] == pytest.approx(max(vals))


def test_run_folder_rules(tmp_path, blur_pair):
    fit(
        blur_pair,
        TINY_MODEL,
        replace(TINY_FIT, steps=5),
        out_dir=tmp_path / "run",
        show_progress=False,
    )
    with pytest.raises(FileExistsError, match="already holds a finished imitator"):
        fit(blur_pair, TINY_MODEL, TINY_FIT, out_dir=tmp_path / "run", show_progress=False)
    again = fit(
        blur_pair, TINY_MODEL, TINY_FIT, out_dir=tmp_path / "run", resume=True, show_progress=False
    )
    assert again.metrics["steps"] == 5  # a finished run is returned as it is
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        fit(blur_pair, TINY_MODEL, TINY_FIT, out_dir=tmp_path / "other", show_progress=False)
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        Imitator.load(tmp_path / "other")


UNET = ("--preset", "unet", "--depth", "2", "--width", "8")
# the path solved (on the flips and rotations a blur commutes with), then its refiner
# trained: the checkpoint must hold the solved path as well as the refiner
REFINED = ("--preset", "refined-light", "--refine-layers", "2", "--linear-bins", "2")


def _fit_command(pair_dir, run, *extra, model=UNET):
    return [
        sys.executable,
        "-m",
        "onepair.cli",
        "fit",
        str(pair_dir / "in.png"),
        str(pair_dir / "out.png"),
        "-o",
        str(run),
        *model,
        "--linear-kernel",
        "7",
        "--steps",
        "300",
        "--batch-size",
        "4",
        "--crop",
        "32",
        "--checkpoint-every",
        "25",
        "--val-every",
        "25",
        "--threads",
        "1",
        "--quiet",
        "--device",
        "cpu",
        *extra,
    ]


@pytest.mark.parametrize("model", [UNET, REFINED], ids=["unet", "refined-light"])
def test_killed_fit_resumes_from_its_checkpoint_and_matches_an_uninterrupted_fit(
    tmp_path, blur_pair, model
):
    from functools import partial

    from onepair.images import save_image

    fit_command = partial(_fit_command, model=model)

    save_image(tmp_path / "in.png", blur_pair.input, bit_depth=16)
    save_image(tmp_path / "out.png", blur_pair.output, bit_depth=16)
    run = tmp_path / "killed"
    process = subprocess.Popen(fit_command(tmp_path, run))
    deadline = time.monotonic() + 120
    checkpoint = run / "checkpoint.safetensors"
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "the fit finished or never checkpointed before the kill"
    assert not (run / "weights.safetensors").exists()
    step = json.loads(load_file_meta(checkpoint))["state"]["step"]
    assert 25 <= step < 300

    with pytest.raises(subprocess.CalledProcessError) as info:
        subprocess.run(fit_command(tmp_path, run), check=True, capture_output=True, text=True)
    assert "pass --resume to continue it" in info.value.stderr

    resumed = subprocess.run(fit_command(tmp_path, run, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {step}" in resumed.stderr
    assert not checkpoint.exists()

    subprocess.run(fit_command(tmp_path, tmp_path / "whole"), check=True, capture_output=True)
    a, b = (
        load_file(str(run / "weights.safetensors")),
        load_file(str(tmp_path / "whole" / "weights.safetensors")),
    )
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def load_file_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata()["onepair"]


def test_resume_with_other_settings_is_refused(tmp_path, blur_pair):
    from onepair import checkpoint

    config = replace(TINY_FIT, steps=30)
    fit(blur_pair, TINY_MODEL, config, out_dir=tmp_path / "run", show_progress=False)
    # fake an interruption: a checkpoint left beside no weights
    imitator = Imitator.load(tmp_path / "run")
    (tmp_path / "run" / "weights.safetensors").unlink()
    optimizer = torch.optim.Adam(imitator.network.parameters())
    checkpoint.save(
        tmp_path / "run",
        imitator.network,
        optimizer,
        torch.Generator(),
        TINY_MODEL,
        config,
        checkpoint.State(step=10),
    )
    with pytest.raises(ValueError, match=r"settings differ .*fit.lr"):
        fit(
            blur_pair,
            TINY_MODEL,
            replace(config, lr=0.1),
            out_dir=tmp_path / "run",
            resume=True,
            show_progress=False,
        )
    with pytest.raises(ValueError, match=r"model.width"):
        fit(
            blur_pair,
            replace(TINY_MODEL, width=4),
            config,
            out_dir=tmp_path / "run",
            resume=True,
            show_progress=False,
        )
    resumed = fit(
        blur_pair,
        TINY_MODEL,
        replace(config, steps=40),
        out_dir=tmp_path / "run",
        resume=True,
        show_progress=False,
    )
    assert resumed.metrics["steps"] == 40


def test_watch_sees_every_validation_in_eval_mode_and_is_not_charged(blur_pair):
    seen: list[tuple[int, float, bool]] = []

    def watch(step: int, seconds: float, network: torch.nn.Module) -> None:
        seen.append((step, seconds, network.training))
        time.sleep(0.2)  # slow watching must not count as fit time

    config = replace(TINY_FIT, steps=60, val_every=10)
    start = time.perf_counter()
    imitator = fit(blur_pair, TINY_MODEL, config, show_progress=False, watch=watch)
    wall = time.perf_counter() - start
    assert [step for step, _, _ in seen] == [0, 10, 20, 30, 40, 50, 60]
    assert not any(training for _, _, training in seen)
    times = [seconds for _, seconds, _ in seen]
    assert times == sorted(times) and times[-1] <= imitator.metrics["seconds"] + 1e-3  # rounded
    assert imitator.metrics["seconds"] < wall - 0.9 * 0.2 * len(seen)
    plain = fit(blur_pair, TINY_MODEL, config, show_progress=False)
    for a, b in zip(plain.network.parameters(), imitator.network.parameters(), strict=True):
        assert torch.equal(a, b)  # watching changes nothing


def test_a_warm_start_begins_from_the_given_weights_and_keeps_their_linear_path(photo):
    pair = Pair.of(photo, load_target("noise:sigma=25|median")(photo))
    model = replace(TINY_MODEL, skip=Skip.LINEAR, linear_kernel=5)
    first = fit(pair, model, TINY_FIT, show_progress=False)
    weights = {k: v.clone() for k, v in first.network.state_dict().items()}
    warm = fit(pair, model, replace(TINY_FIT, steps=20), show_progress=False, init=weights)
    assert warm.history[0]["step"] == 0
    assert warm.history[0]["val_psnr"] == pytest.approx(first.metrics["val_psnr"], abs=1e-6)
    assert warm.metrics["val_psnr"] >= first.metrics["val_psnr"] - 1e-6  # best weights kept
    assert torch.equal(warm.network.linear.weight, first.network.linear.weight)
    cold = fit(pair, model, replace(TINY_FIT, steps=1), show_progress=False)
    assert cold.history[0]["val_psnr"] < first.metrics["val_psnr"]  # trained weights mattered
