"""The `onepair` command end to end on a tiny pair, and its error messages."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from typer.testing import CliRunner

from onepair.cli import app
from onepair.images import load_image, save_image
from onepair.imitator import Imitator
from test_adaptive import denoised

runner = CliRunner()
TINY = [
    "--preset",  # the default's path solve would dominate these small fits
    "unet",
    "--depth",
    "2",
    "--width",
    "8",
    "--linear-kernel",
    "9",
    "--steps",
    "60",
    "--crop",
    "32",
    "--batch-size",
    "4",
    "--val-every",
    "20",
    "--quiet",
    "--device",
    "cpu",
]


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def test_query_fit_apply_eval(tmp_path):
    made = invoke(
        "query",
        "gaussian-blur:sigma=1",
        "builtin:astronaut",
        "--size",
        "96",
        "-o",
        tmp_path / "pair",
    )
    assert made.exit_code == 0, made.output
    assert "96x96 -> 96x96x3, 16-bit" in made.output and "deterministic" in made.output
    asked = json.loads((tmp_path / "pair" / "query.json").read_text())
    assert asked["queries"] == 2 and asked["determinism"]["deterministic"] is True
    assert asked["determinism"]["max_abs_diff"] == 0.0

    fitted = invoke(
        "fit",
        tmp_path / "pair" / "input.png",
        tmp_path / "pair" / "output.png",
        "-o",
        tmp_path / "run",
        *TINY,
    )
    assert fitted.exit_code == 0, fitted.output
    assert "held-out PSNR" in fitted.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 60 and metrics["val_psnr"] > metrics["val_floor_psnr"]

    sixteen = tmp_path / "in16.tif"
    save_image(sixteen, np.random.default_rng(0).random((45, 37, 3)), bit_depth=16)
    eight = save_image(tmp_path / "in8.png", np.random.default_rng(1).random((20, 30, 3)))
    applied = invoke("apply", tmp_path / "run", sixteen, eight, "-o", tmp_path / "applied")
    assert applied.exit_code == 0, applied.output
    assert "16-bit, streamed" in applied.output and "8-bit" in applied.output
    streamed = load_image(tmp_path / "applied" / "in16.tif")
    in_memory = Imitator.load(tmp_path / "run").apply(load_image(sixteen))
    assert streamed.shape == (45, 37, 3)
    np.testing.assert_allclose(streamed, in_memory, atol=1 / 65535)
    assert "computes in" not in applied.output  # float32: no bfloat16 units in tests (conftest.py)

    halved = invoke(
        "apply", tmp_path / "run", sixteen, "--precision", "bfloat16", "-o", tmp_path / "bf16"
    )
    assert halved.exit_code == 0, halved.output
    assert "the network's body computes in bfloat16 (--precision float32" in halved.output
    bf16 = load_image(tmp_path / "bf16" / "in16.tif")
    gap = np.abs(bf16 - in_memory)
    assert 0 < gap.max() < 0.01  # another arithmetic, and close to float32's
    bad = invoke("apply", tmp_path / "run", eight, "--precision", "half", "-o", tmp_path / "x")
    assert bad.exit_code == 2
    assert "precision is 'half'; expected one of auto, float32, bfloat16" in bad.output

    evaluated = invoke(
        "eval",
        tmp_path / "run",
        "--target",
        "gaussian-blur:sigma=1",
        "--images",
        "builtin:coffee",
        "--images",
        sixteen,
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())
    assert len(report["rows"]) == 2 and report["summary"]["target_queries"] == 2
    assert report["summary"]["psnr_mean"] > report["summary"]["floor_psnr_mean"]
    assert report["summary"]["precision"] == "float32"
    assert (tmp_path / "run" / "eval" / "eval.csv").read_text().startswith("image,psnr,ssim")


def test_targets_lists_the_table():
    listed = invoke("targets")
    assert listed.exit_code == 0
    for name in ("gaussian-blur", "tv-denoise", "bilateral", "noise"):
        assert name in listed.output


def test_bad_input_gives_clear_errors(tmp_path):
    save_image(tmp_path / "a.png", np.zeros((40, 40, 3)))
    save_image(tmp_path / "b.png", np.zeros((40, 38, 3)))
    mismatch = invoke("fit", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "r")
    assert mismatch.exit_code == 2
    assert "input is 40x40x3 but output is 40x38x3" in mismatch.output
    small = invoke("fit", tmp_path / "a.png", tmp_path / "a.png", "-o", tmp_path / "r2")
    assert small.exit_code == 2 and "training crops are 64x64" in small.output
    missing = invoke("fit", tmp_path / "nope.png", tmp_path / "a.png", "-o", tmp_path / "r3")
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad_target = invoke("eval", tmp_path, "--target", "blurr", "--images", "builtin:coffee")
    assert bad_target.exit_code == 2 and "config.json missing" in bad_target.output
    bad_arch = invoke(
        "fit",
        tmp_path / "a.png",
        tmp_path / "a.png",
        "-o",
        tmp_path / "r4",
        "--architecture",
        "vit",
    )
    assert bad_arch.exit_code == 2 and "expected one of unet, plain" in bad_arch.output
    misplaced = invoke(
        "fit",
        tmp_path / "a.png",
        tmp_path / "a.png",
        "-o",
        tmp_path / "r6",
        "--preset",
        "paper-prototype",
        "--depth",
        "4",
    )
    assert misplaced.exit_code == 2
    assert "--depth: not a setting of the plain architecture" in misplaced.output
    bad_loss = invoke(
        "fit",
        tmp_path / "a.png",
        tmp_path / "a.png",
        "-o",
        tmp_path / "r5",
        "--loss",
        "l3",
        "--crop",
        "16",
    )
    assert bad_loss.exit_code == 2 and "'l3' is not a valid Loss" in bad_loss.output


def test_demo_writes_table_and_side_by_side_images(tmp_path):
    result = invoke(
        "demo", "-o", tmp_path, "--seconds", "2", "--target", "gaussian-blur:sigma=1", "--quiet"
    )
    assert result.exit_code == 0, result.output
    assert "gaussian-blur:sigma=1" in result.output and "PSNR" in result.output
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 1 and rows[0]["psnr"] > rows[0]["floor_psnr"]
    folder = tmp_path / "gaussian-blur_sigma=1"
    side = load_image(folder / "coffee_input_target_imitation.png")
    assert side.shape == (256, 3 * 256 + 2 * 4, 3)
    assert (folder / "run" / "weights.safetensors").is_file()
    assert (folder / "eval.json").is_file()


def test_help_keeps_square_brackets():
    shown = invoke("study", "run", "--help")
    assert shown.exit_code == 0
    text = " ".join(shown.output.replace("│", " ").split())
    assert "'onepair[cluster]'" in text and "grid's [full] table" in text


def test_fit_takes_the_activation_and_the_held_out_block_side(tmp_path, photo):
    x = save_image(tmp_path / "x.png", photo)
    y = save_image(tmp_path / "y.png", photo[::-1])
    fitted = invoke(
        "fit", x, y, "-o", tmp_path / "run", *TINY, "--activation", "relu", "--holdout-block", "8"
    )
    assert fitted.exit_code == 0, fitted.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["activation"] == "relu" and config["fit"]["holdout_block"] == 8
    wrong = invoke("fit", x, y, "-o", tmp_path / "bad", *TINY, "--activation", "tanh")
    assert wrong.exit_code != 0 and "activation is 'tanh'; expected one of" in wrong.output


def test_the_filters_preset_solves_its_stages_and_applies_with_the_ensemble(tmp_path, photo):
    x = save_image(tmp_path / "x.png", photo)
    y = save_image(tmp_path / "y.png", np.sqrt(photo))
    flags = ["--preset", "filters", "--linear-kernel", "5", "--stage2-kernel", "3"]
    fitted = invoke("fit", x, y, "-o", tmp_path / "run", *flags, "--augment", "auto", "--quiet")
    assert fitted.exit_code == 0, fitted.output
    assert "solved in the linear path" in fitted.output and "0 steps" in fitted.output
    assert "apply --ensemble can average over flips and rotations" in fitted.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == {
        "architecture": "filter",
        "linear_kernel": 5,
        "linear_bins": 5,
        "stage2_kernel": 3,
        "stage2_bins": 3,
        "refine_layers": 0,
        "refine_width": 32,
        "refined_stage2": True,
        "refined_bins": 0,
    }
    applied = invoke("apply", tmp_path / "run", x, "--ensemble", "-o", tmp_path / "out")
    assert applied.exit_code == 0, applied.output
    assert load_image(tmp_path / "out" / "x.png").shape == photo.shape
    wrong = invoke("fit", x, y, "-o", tmp_path / "bad", "--preset", "unet", "--stage2-kernel", "3")
    assert wrong.exit_code != 0 and "not a setting of the unet architecture" in wrong.output
    assert "--preset unet (or --architecture) for another" in wrong.output
    # a denoiser whose held-out blocks prefer the path solved on the transforms too
    noisy, clean = denoised("astronaut", 0)
    x, y = save_image(tmp_path / "n.png", noisy), save_image(tmp_path / "c.png", clean)
    flags = [*flags[:2], "--linear-kernel", "7", "--stage2-kernel", "0", "--augment", "auto"]
    fitted = invoke("fit", x, y, "-o", tmp_path / "sym", *flags)
    assert fitted.exit_code == 0, fitted.output
    assert "solved on flips and rotations (found on the held-out blocks)" in fitted.output
    metrics = json.loads((tmp_path / "sym" / "metrics.json").read_text())
    assert len(metrics["linear_solved_on"]) == 8


def test_the_refined_preset_trains_its_refiner_from_the_command_line(tmp_path):
    noisy, clean = denoised("astronaut", 0)
    x, y = save_image(tmp_path / "n.png", noisy), save_image(tmp_path / "c.png", clean)
    flags = ["--preset", "refined", "--linear-kernel", "7", "--stage2-kernel", "0"]
    flags += ["--refine-layers", "2", "--refine-width", "8", "--steps", "40", "--crop", "32"]
    fitted = invoke("fit", x, y, "-o", tmp_path / "run", *flags, "--quiet")
    assert fitted.exit_code == 0, fitted.output
    assert "40 steps" in fitted.output
    assert "path solved on and network trained with flips and rotations" in fitted.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["refine_layers"] == 2 and config["model"]["refine_width"] == 8
    wrong = invoke("fit", x, y, "-o", tmp_path / "bad", *flags[:2], "--refine-layers", "-1")
    assert wrong.exit_code != 0 and "refine_layers is -1" in wrong.output


def test_the_auto_preset_is_the_gpu_default_on_cuda_and_the_default_elsewhere():
    from onepair.presets import PRESETS, preset_for

    assert preset_for("auto", "cpu") == "default"
    assert preset_for("auto", "cuda") == preset_for("auto", "cuda:1") == "default-gpu"
    assert preset_for("first-default", "cuda") == "first-default"
    # resuming: the interrupted fit's batch size decides, on any device
    assert preset_for("auto", "cuda", {"batch_size": 4}) == "default"
    assert preset_for("auto", "cpu", {"batch_size": 64}) == "default-gpu"
    assert preset_for("auto", "cpu", {"batch_size": 8}) == "default"  # neither: the device
    gpu_model, gpu_fit = PRESETS["default-gpu"]
    model, fit = PRESETS["default"]
    assert gpu_model == model and gpu_fit.batch_size == 64 and gpu_fit.lr == 2 * fit.lr
    assert replace(gpu_fit, batch_size=fit.batch_size, lr=fit.lr) == fit  # nothing else differs
    # the U-Net default until 2026-11-29 keeps its two recipes under their own names
    assert PRESETS["unet"][0] == PRESETS["unet-gpu"][0] and PRESETS["unet-gpu"][1].batch_size == 64


def test_the_fidelity_preset_fits_its_deep_network_on_crops_of_96_and_tests_equivariance(
    tmp_path,
):
    """``--preset fidelity``: a 4-level U-Net of 32 channels (59 x 59 view), crops of 96,
    and flips and rotations kept only where the held-out blocks show equivariance."""
    made = invoke(
        "query", "gaussian-blur:sigma=1", "builtin:astronaut", "--size", "128", "-o", tmp_path
    )
    assert made.exit_code == 0, made.output
    pair = [tmp_path / "input.png", tmp_path / "output.png"]
    run = tmp_path / "run"
    done = invoke("fit", *pair, "-o", run, "--preset", "fidelity", "--steps", "8", "--quiet")
    assert done.exit_code == 0, done.output
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["depth"] == 4 and saved["model"]["width"] == 32
    assert saved["fit"]["crop"] == 96 and saved["fit"]["augment"] == "auto"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["receptive_field"] == 59
    # a blur commutes with every flip and rotation: the check on the blocks ran and kept some
    assert metrics["equivariance_psnr"] is not None and "identity" in metrics["augment"]


def test_a_fit_started_with_batches_of_64_resumes_with_them_under_the_auto_preset(tmp_path):
    """A fit begun on a GPU (default-gpu) and resumed on this CPU keeps its batch size."""
    import torch

    from onepair import checkpoint
    from onepair.presets import preset

    made = invoke(
        "query",
        "gaussian-blur:sigma=1",
        "builtin:astronaut",
        "--size",
        "64",
        "-o",
        tmp_path / "pair",
    )
    assert made.exit_code == 0, made.output
    pair = [tmp_path / "pair" / "input.png", tmp_path / "pair" / "output.png"]
    run = tmp_path / "run"
    flags = ["--steps", "20", "--crop", "16", "--quiet", "--device", "cpu"]
    started = invoke("fit", *pair, "-o", run, "--preset", "default-gpu", *flags)
    assert started.exit_code == 0, started.output
    # an interruption at step 10: the checkpoint of a default-gpu fit, no weights yet
    imitator = Imitator.load(run)
    (run / "weights.safetensors").unlink()
    model, config = preset("default-gpu", 3, 3, 1)
    config = replace(config, steps=20, crop=16, device="cpu")
    optimizer = torch.optim.Adam(imitator.network.parameters())
    state = checkpoint.State(step=10)
    checkpoint.save(run, imitator.network, optimizer, torch.Generator(), model, config, state)
    resumed = invoke("fit", *pair, "-o", run, "--resume", *flags)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "config.json").read_text())["fit"]["batch_size"] == 64
    # where the batch size matches neither auto choice, the device decides, and the
    # refusal names --preset
    checkpoint.save(
        run,
        imitator.network,
        optimizer,
        torch.Generator(),
        model,
        replace(config, batch_size=8),
        state,
    )
    (run / "weights.safetensors").unlink()
    refused = invoke("fit", *pair, "-o", run, "--resume", *flags)
    assert refused.exit_code == 2 and "fit.batch_size" in refused.output
    assert "--preset" in refused.output


def test_an_unknown_device_is_named_in_the_error(tmp_path):
    save_image(tmp_path / "a.png", np.zeros((40, 40, 3), np.float32))
    bad = invoke(
        "fit", tmp_path / "a.png", tmp_path / "a.png", "-o", tmp_path / "r", "--device", "gpu"
    )
    assert bad.exit_code == 2 and "device is 'gpu'" in bad.output


def test_every_command_is_there_under_python_m():
    """`python -m onepair.cli` runs the module as __main__; commands defined in their own
    modules must still be found."""
    import subprocess
    import sys

    shown = subprocess.run(
        [sys.executable, "-m", "onepair.cli", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    for command in ("fit", "apply", "audit", "erf", "study", "zoo"):
        assert f" {command} " in shown.stdout, command
