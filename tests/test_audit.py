"""The owner's audit end to end, at a tiny size: report data, HTML in a browser, resumption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from browser import browser_missing, render_in_browser
from onepair.audit import AuditConfig, run_audit
from onepair.cli import app
from onepair.verdict import exposure, recommend
from onepair.verified import NAME, PREV

pytest.importorskip("imwatermark", reason="invisible-watermark is installed by `make setup`")

TARGET = "gaussian-blur:sigma=2"
# A tiny audit: the same code path as the default one, in seconds.
CONFIG_SOURCE = """
from onepair.audit import AuditConfig
from onepair.defenses import Defense
from onepair.fit import FitConfig
from onepair.models import FilterConfig, UNetConfig

TINY = UNetConfig(depth=2, width=8, linear_kernel=7)
CONFIG = AuditConfig(
    seconds=2.5,
    defense_seconds=2.5,
    defenses=(
        Defense("jpeg", 30),
        Defense("invisible-watermark", "dwtDctSvd"),
        Defense("perturbation", 30.0),
    ),
    held_out=("builtin:coffee", "builtin:camera"),
    imitators=(
        ("tiny", "U-Net, 2 levels, 8 channels", TINY),
        (
            "filters",
            "adaptive linear path",
            FilterConfig(linear_kernel=7, linear_bins=3, stage2_kernel=3),
        ),
        (
            "refined",
            "adaptive linear path and a refiner",
            FilterConfig(
                linear_kernel=7,
                linear_bins=3,
                stage2_kernel=3,
                refine_layers=2,
                refine_width=8,
                refined_stage2=False,
            ),
        ),
    ),
    defense_model=TINY,
    fit=FitConfig(steps=10**9, crop=32, val_every=10, checkpoint_every=10, device="cpu"),
    erf_count=2,
    erf_size=48,
)
"""
namespace: dict = {}
exec(CONFIG_SOURCE, namespace)
CONFIG: AuditConfig = namespace["CONFIG"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("audit") / "report"
    lines: list[str] = []
    data = run_audit(
        TARGET, "builtin:astronaut", out, CONFIG, say=lines.append, show_progress=False
    )
    assert [line[:5] for line in lines if line.startswith("[")] == [
        "[1/5]",
        "[2/5]",
        "[3/5]",
        "[4/5]",
        "[5/5]",
    ]
    return out, data


def test_report_data_has_every_part(audited) -> None:
    out, data = audited
    assert json.loads((out / "report.json").read_text()) == data
    assert data["target"] == TARGET and data["example"]["source"] == "builtin:astronaut"
    # the example and the held-out images once each, and the ERF's probes
    assert data["queries"] == 1 + 2 + data["erf"]["queries"]
    tiny = data["attack"]["imitators"][0]
    assert tiny["psnr"] > data["attack"]["floor_psnr"] + 10  # a blur is easy to copy
    seconds = [point["seconds"] for point in tiny["curve"]]
    assert len(seconds) >= 2 and seconds == sorted(seconds)
    assert seconds[-1] == round(tiny["fit_seconds"], 2)  # the curve ends at the final copy
    filters = data["attack"]["imitators"][1]  # solved, not trained: one point, at step 0
    assert filters["psnr"] > data["attack"]["floor_psnr"] + 10
    assert [point["step"] for point in filters["curve"]] in ([0], [0, 0])
    run = json.loads((out / "runs" / "filters" / "config.json").read_text())
    assert run["fit"]["augment"] == "auto"  # as its preset; the networks as configured
    assert (
        json.loads((out / "runs" / "tiny" / "config.json").read_text())["fit"]["augment"] == "none"
    )
    refined = data["attack"]["imitators"][2]  # solved, then its refiner trained on top
    assert refined["psnr"] > data["attack"]["floor_psnr"] + 10
    assert refined["curve"][-1]["step"] > 0
    run = json.loads((out / "runs" / "refined" / "config.json").read_text())
    assert run["fit"]["augment"] == "auto" and run["model"]["refine_layers"] == 2
    assert [s["name"] for s in data["attack"]["samples"]] == list(CONFIG.held_out)
    assert data["erf"]["radius"] > 0 and data["erf"]["imitator_radius"] > 0
    labels = [row["label"] for row in data["defenses"]]
    assert labels == [
        "undefended",
        "JPEG q30",
        "invisible watermark (dwtDctSvd)",
        "perturbation, floor 30 dB",
    ]
    for name in [
        "example_input",
        "example_output",
        "erf_target",
        "erf_imitator",
        "coffee_error",
        "camera_imitation",
    ]:
        assert (out / "images" / f"{name}.png").is_file(), name
    assert data["verdict"]["exposure"] in ("high", "moderate", "low")


def test_defences_are_measured_against_the_undefended_copy(audited) -> None:
    _, data = audited
    rows = {row["defense"]: row for row in data["defenses"]}
    assert rows["none"]["cost_psnr"] is None and rows["none"]["evidence"] is None
    assert rows["jpeg"]["psnr"] < rows["none"]["psnr"]
    assert 30.0 <= rows["perturbation"]["cost_psnr"] < 30.5
    assert rows["perturbation"]["psnr"] < rows["none"]["psnr"] - 5
    assert rows["perturbation"]["evidence"]["rate"] == 1.0
    mark = rows["invisible-watermark"]["evidence"]
    assert mark["in_published"] == 1.0 and mark["images"] == 2
    assert 0.0 <= mark["rate"] <= 1.0 and mark["control_rate"] is not None
    # the strongest drop within the cost limit (35 dB) is recommended: here nothing
    # costs less than 35 dB and lowers the copy, so JPEG q30 and the 30 dB decoy are out
    affordable = [r for r in data["defenses"] if (r["cost_psnr"] or 99) >= CONFIG.max_cost]
    assert data["verdict"]["recommended"] in [None, *[r["label"] for r in affordable]]


def test_report_renders_in_a_browser_with_every_image(audited, tmp_path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    out, data = audited
    html = out / "report.html"
    assert "http://" not in html.read_text() and "https://" not in html.read_text()
    facts = render_in_browser(html, tmp_path / "audit.png")
    assert facts["broken"] == [] and facts["images"] >= 12
    assert not facts["errors"] and not facts["requests"]
    assert facts["h1"] == [f"onepair audit: {TARGET}"]
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shots = os.environ.get("ONEPAIR_SCREENSHOT_DIR")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        (Path(shots) / "audit.png").write_bytes((tmp_path / "audit.png").read_bytes())


def test_other_settings_in_the_same_folder_are_refused(audited) -> None:
    out, _ = audited
    from dataclasses import replace

    with pytest.raises(ValueError, match="holds an audit with other settings \\(seconds\\)"):
        run_audit(
            TARGET,
            "builtin:astronaut",
            out,
            replace(CONFIG, seconds=3.0),
            say=lambda _: None,
            show_progress=False,
        )


def test_a_killed_audit_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "report"
    script = tmp_path / "audit.py"
    script.write_text(
        CONFIG_SOURCE
        + textwrap.dedent(f"""
        import logging, sys, torch
        from onepair.audit import run_audit
        logging.basicConfig(level=logging.INFO)
        torch.set_num_threads(1)
        run_audit({TARGET!r}, "builtin:astronaut", sys.argv[1], CONFIG, show_progress=False)
    """)
    )
    process = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sweep = out / "runs" / "defense-undefended"

    def checkpointed() -> bool:  # a checkpoint is renamed to PREV before the next is in place
        return (sweep / NAME).exists() or (sweep / PREV).exists()

    deadline = time.monotonic() + 120
    while not checkpointed() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpointed(), "the audit never reached the defence sweep"
    assert not (out / "report.json").exists()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "state").glob("*.json")}
    assert "attack-tiny.json" in done and "defense-undefended.json" not in done

    result = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((out / "report.json").read_text())
    assert len(data["defenses"]) == 4 and "resuming at step" in result.stderr
    for name, mtime in done.items():  # finished steps were not redone
        if name != "settings.json":
            assert (out / "state" / name).stat().st_mtime_ns == mtime, name


def test_cli_refuses_bad_defences_before_any_work(tmp_path: Path) -> None:
    runner = CliRunner()
    base = [
        "audit",
        "--target",
        TARGET,
        "--example",
        "builtin:astronaut",
        "-o",
        str(tmp_path / "r"),
    ]
    result = runner.invoke(app, [*base, "--defense", "jpeg:101"])
    assert result.exit_code == 2 and "expected quality, an integer 1..100" in result.output
    result = runner.invoke(app, [*base, "--defense", "blur:2"])
    assert result.exit_code == 2
    assert "unknown defence 'blur'" in result.output and "perturbation" in result.output
    assert not (tmp_path / "r").exists()


def test_verdict_rules() -> None:
    assert exposure(40.0, 20.0) == "high" and exposure(30.0, 20.0) == "moderate"
    assert exposure(25.0, 20.0) == "low" and exposure(36.0, 35.5) == "low"
    rows = [
        {"defense": "none", "label": "undefended", "psnr": 40.0, "cost_psnr": None},
        {"defense": "jpeg", "label": "JPEG q30", "psnr": 30.0, "cost_psnr": 32.0},
        {"defense": "jpeg", "label": "JPEG q70", "psnr": 38.5, "cost_psnr": 38.0},
        {"defense": "noise", "label": "noise sigma 2", "psnr": 39.5, "cost_psnr": 42.0},
    ]
    assert recommend(rows, max_cost=35.0)["label"] == "JPEG q70"  # q30 costs too much
    assert recommend(rows, max_cost=30.0)["label"] == "JPEG q30"
    assert recommend(rows, max_cost=45.0) is None  # nothing affordable lowers it by 1 dB
