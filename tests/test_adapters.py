"""Spec grammar and the local adapters: py:, cmd: (a real subprocess), pairs:, run:."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_MODEL
from onepair.images import save_image
from onepair.imitator import Imitator
from onepair.models import build
from onepair.targets import load_target

INVERT = """
import sys
args = sys.argv[1:]
if args[0] == "fail":
    sys.stderr.write("model exploded: out of memory\\n")
    sys.exit(3)
if args[0] == "sleep":
    import subprocess, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open(args[1], "w").write(str(child.pid))
    time.sleep(30)
if args[0] == "argv":
    Path = __import__("pathlib").Path
    Path(args[1]).write_text("\\n".join(args))
if args[0] == "garbage":
    open(args[-1], "wb").write(b"not an image")
    sys.exit(0)
from onepair.images import load_image, save_image
x = load_image(args[-2])
save_image(args[-1], 1.0 - x, bit_depth=16)
"""


def _command(tmp_path: Path, *words: str) -> str:
    script = tmp_path / "invert.py"
    script.write_text(INVERT)
    parts = [sys.executable, str(script), *words]
    return "cmd:" + " ".join(shlex.quote(p) for p in parts) + " {input} {output}"


def test_py_adapter_binds_options(photo):
    via_py = load_target("py:onepair.targets.classical:gaussian_blur#sigma=1.5")
    builtin = load_target("gaussian-blur:sigma=1.5")
    np.testing.assert_array_equal(via_py(photo), builtin(photo))
    assert via_py.queries == 1 and via_py.pixels == photo.shape[0] * photo.shape[1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("py:onepair.targets.classical", "expected 'package.module:function'"),
        ("py:no_such_module_x:f", "cannot import"),
        ("py:onepair.targets.classical:nope", "has no attribute 'nope'"),
    ],
)
def test_py_adapter_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        load_target(spec)


def test_callable_is_a_target(photo):
    target = load_target(lambda x: x[:, :, :1])
    assert target(photo).shape == (*photo.shape[:2], 1)
    assert target.spec == "py:<lambda>" and target.queries == 1


def test_cmd_runs_a_real_program_without_a_shell(tmp_path, photo, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    target = load_target(_command(tmp_path))
    out = target(photo)
    assert np.abs(out - (1.0 - photo)).max() <= 1.0 / 65535 + 1e-6
    assert list(scratch.iterdir()) == []  # temporary files removed
    # Shell syntax reaches the program literally: nothing is expanded or redirected.
    log = tmp_path / "argv.txt"
    literal = load_target(_command(tmp_path, "argv", str(log), "$HOME;", ">x", "|", "*"))
    literal(photo[:16, :16])
    assert log.read_text().splitlines()[2:6] == ["$HOME;", ">x", "|", "*"]
    assert not (Path.cwd() / "x").exists()


def test_cmd_failure_quotes_stderr(tmp_path, photo):
    with pytest.raises(RuntimeError, match=r"status 3; stderr ends: 'model exploded"):
        load_target(_command(tmp_path, "fail"))(photo)


def test_cmd_timeout_kills_the_program_and_what_it_started(tmp_path, photo):
    pid_file = tmp_path / "child.pid"
    target = load_target(_command(tmp_path, "sleep", str(pid_file)) + "#timeout=2")
    with pytest.raises(RuntimeError, match="longer than 2 s and was killed"):
        target(photo)
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild is killed with its group (reaped by init)
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_cmd_unreadable_output(tmp_path, photo):
    with pytest.raises(RuntimeError, match="exited normally but its output is unusable"):
        load_target(_command(tmp_path, "garbage"))(photo)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cmd:cat {input}", r"lacks \{output\}"),
        ("cmd:no-such-program-x {input} {output}", "not found on PATH"),
        ("cmd:cat 'unclosed {input} {output}", "cannot be split"),
        ("cmd:cat {input} {output}#suffix=.gif", "suffix is '.gif'"),
        ("cmd:cat {input} {output}#retries=2", "unknown parameter 'retries'.*accepted: timeout"),
        ("cmd:#timeout=3", "names no location"),
    ],
)
def test_cmd_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        load_target(spec)


def _pairs_folder(root: Path, photo: np.ndarray) -> dict[str, np.ndarray]:
    images = {"a": photo, "b": photo[::-1].copy(), "c": photo[:, :40].copy()}
    for name, image in images.items():
        save_image(root / "inputs" / f"{name}.png", image, bit_depth=16)
        save_image(root / "outputs" / f"{name}.tif", image[:, :, :1] * 0.5, bit_depth=16)
    return images


def test_pairs_folder_answers_its_own_inputs(tmp_path, photo):
    from onepair.images import load_image

    images = _pairs_folder(tmp_path, photo)
    target = load_target(f"pairs:{tmp_path}")
    for name in images:
        x = load_image(tmp_path / "inputs" / f"{name}.png")
        np.testing.assert_allclose(target(x), x[:, :, :1] * 0.5, atol=1 / 65535)
    assert target.queries == 3
    with pytest.raises(ValueError, match="is none of the 3 inputs"):
        target(np.zeros_like(photo))


def test_pairs_folder_refuses_escapes_and_gaps(tmp_path, photo):
    root = tmp_path / "pairs"
    _pairs_folder(root, photo)
    outside = tmp_path / "secret.png"
    save_image(outside, photo)
    (root / "inputs" / "d.png").symlink_to(outside)
    with pytest.raises(ValueError, match="leads outside"):
        load_target(f"pairs:{root}")
    (root / "inputs" / "d.png").unlink()
    (root / "outputs" / "b.tif").unlink()
    with pytest.raises(ValueError, match=r"1 input\(s\) .* have no output .*: b"):
        load_target(f"pairs:{root}")
    with pytest.raises(ValueError, match="not a folder"):
        load_target(f"pairs:{tmp_path / 'nowhere'}")


def test_run_folder_is_a_target(tmp_path, photo):
    torch.manual_seed(0)
    network = build(TINY_MODEL, 3, 3, 1)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    imitator = Imitator(network)
    imitator.save(tmp_path / "run")
    target = load_target(f"run:{tmp_path / 'run'}#tile=32,device=cpu")
    np.testing.assert_allclose(target(photo), imitator.apply(photo, tile=None), atol=1e-5)
    with pytest.raises(ValueError, match="not a run folder"):
        load_target(f"run:{tmp_path}")
    with pytest.raises(ValueError, match="tile is 'big'; expected a side in pixels or auto"):
        load_target(f"run:{tmp_path / 'run'}#tile=big")
    auto = load_target(f"run:{tmp_path / 'run'}#device=cpu")  # tiles of 512 on the CPU
    np.testing.assert_allclose(auto(photo), imitator.apply(photo, tile=None), atol=1e-5)


def test_degradation_in_front_of_an_adapter(photo):
    target = load_target("noise:sigma=10|py:onepair.targets.classical:identity")
    noisy = target.degrade(photo, seed=0)
    assert 0.02 < np.abs(noisy - photo).mean() < 0.05
    np.testing.assert_array_equal(target(noisy), noisy)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-model", r"unknown target 'no-such-model'.*adapters: py:.*cmd:.*onnx:FILE"),
        ("noise:sigma=25", "a degradation needs a model after it"),
        ("gaussian-blur:sigma", "malformed parameter 'sigma'"),
        ("gaussian-blur:sigma=big", "must be a number"),
        ("", "expected a string like"),
        ("pairs:", "names no location"),
    ],
)
def test_bad_specs_list_what_is_accepted(spec, message):
    with pytest.raises(ValueError, match=message):
        load_target(spec)


def test_option_text_keeps_its_parameter_type_and_secrets_are_masked():
    target = load_target("http://127.0.0.1:9/#token=0123,retries=0,timeout=1e1")
    web = target.model
    assert web._token == "0123"  # a string option stays text: no int() on the way
    assert target.spec == "http://127.0.0.1:9/#token=***,retries=0,timeout=1e1"
    assert load_target("noise:sigma=2.5|gaussian-blur:sigma=1").spec.startswith("noise:sigma=2.5")


def test_a_hash_inside_the_location_is_not_taken_for_options(tmp_path, photo):
    log = tmp_path / "argv.txt"
    target = load_target(_command(tmp_path, "argv", str(log), "-fill", "#ff0000"))
    target(photo[:8, :8])
    assert log.read_text().splitlines()[2:4] == ["-fill", "#ff0000"]
    with_options = load_target(_command(tmp_path, "argv", str(log), "#x") + "#timeout=30")
    with_options(photo[:8, :8])
    assert log.read_text().splitlines()[2] == "#x"


def test_an_answer_of_the_wrong_size_is_an_error(photo):
    target = load_target(lambda x: x[:-1])
    with pytest.raises(ValueError, match=r"answered a 96x80 image with 95x80; .* integer multiple"):
        target(photo)
    assert load_target(lambda x: x.repeat(2, 0).repeat(2, 1))(photo).shape == (192, 160, 3)
