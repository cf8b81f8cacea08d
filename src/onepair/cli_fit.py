"""``onepair fit``: an imitator from one pair (or a few), with a preset and overrides.

Registered on :data:`onepair.cli.app` when this module is imported.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import typer

from onepair.cli import _db, _fail, app, out


@app.command("fit")
def fit_command(
    examples: list[Path] = typer.Argument(
        ...,
        help="INPUT OUTPUT: the example's input and the black box's output for it; more "
        "INPUT OUTPUT pairs for few-shot; a folder holding input.* and output.* (from "
        "`onepair extract`) counts as one pair",
        show_default=False,
    ),
    out_dir: Path = typer.Option(..., "-o", "--out", help="run folder to write"),
    preset: str = typer.Option(
        "auto",
        help="recipe: auto (default-gpu on a CUDA device, else default) | default | "
        "default-gpu | unet | unet-gpu | deep | first-default | fidelity | filters | refined | "
        "refined-light | paper-prototype",
    ),
    architecture: str | None = typer.Option(
        None, help="unet | plain | attention | softmax | filter (overrides the preset)"
    ),
    depth: int | None = typer.Option(None, help="U-Net resolutions"),
    width: int | None = typer.Option(None, help="channels at full resolution"),
    kernel_size: int | None = typer.Option(None),
    convs_per_level: int | None = typer.Option(None, help="U-Net convolutions per level"),
    growth: int | None = typer.Option(
        None, help="U-Net channel factor per level: 2 doubles them, 1 keeps --width"
    ),
    unshuffle: int | None = typer.Option(
        None, help="U-Net space-to-depth factor: its body runs at 1/f size"
    ),
    activation: str | None = typer.Option(None, help="U-Net units: leaky-relu | relu"),
    receptive_field: int | None = typer.Option(None, help="plain CNN receptive field (odd)"),
    batchnorm: bool | None = typer.Option(None, help="plain CNN batch norm"),
    skip: str | None = typer.Option(None, help="none | identity | linear"),
    linear_kernel: int | None = typer.Option(None, help="size of the linear path's filter"),
    linear_bins: int | None = typer.Option(
        None,
        help="filters in the linear path, blended per pixel by gradient strength (1: one "
        "filter; more copy denoisers better, docs/FIDELITY.md)",
    ),
    stage2_kernel: int | None = typer.Option(
        None,
        help="filter architecture: size of a second stage's filters on the input and the "
        "first stage's output (0: none; kept only where the held-out blocks show it helps)",
    ),
    stage2_bins: int | None = typer.Option(None, help="filter architecture: second stage bins"),
    refine_layers: int | None = typer.Option(
        None,
        help="filter architecture: layers of a CNN shared across colour channels that "
        "corrects the path (0: none; used where input and output channels agree)",
    ),
    refine_width: int | None = typer.Option(None, help="filter architecture: refiner channels"),
    refined_stage2: bool | None = typer.Option(
        None,
        "--refined-stage2/--no-refined-stage2",
        help="filter architecture: keep the second stage where a refiner is trained "
        "(refined-light's refiner takes its place, which applies faster)",
        show_default=False,
    ),
    refined_bins: int | None = typer.Option(
        None,
        help="filter architecture: the first stage's blended filters where a refiner is "
        "trained (0: --linear-bins; the default: 3 under its refiner, 5 without one)",
    ),
    steps: int | None = typer.Option(None, help="step budget"),
    seconds: float | None = typer.Option(None, help="wall-clock budget in seconds"),
    batch_size: int | None = typer.Option(None),
    crop: int | None = typer.Option(None, help="training crop side in input pixels"),
    lr: float | None = typer.Option(None, help="peak learning rate"),
    loss: str | None = typer.Option(None, help="l2 | l1"),
    augment: str | None = typer.Option(
        None,
        help="none | all | auto | test: flips and rotations of the example as extra pairs; auto "
        "keeps those the held-out blocks show the target equivariant to; test finds them as "
        "auto does, for apply --ensemble only",
    ),
    holdout: float | None = typer.Option(
        None, help="fraction of the example held out for validation, as blocks spread over it"
    ),
    holdout_block: int | None = typer.Option(None, help="side of the held-out blocks"),
    val_every: int | None = typer.Option(None),
    patience: int | None = typer.Option(None, help="validations without gain before stopping"),
    checkpoint_every: int | None = typer.Option(None, help="steps between checkpoints"),
    seed: int | None = typer.Option(None),
    device: str | None = typer.Option(None, help="auto | cpu | cuda | cuda:N"),
    threads: int | None = typer.Option(None, help="torch CPU threads"),
    resume: bool = typer.Option(False, help="continue an interrupted fit in --out"),
    auto: bool = typer.Option(
        False,
        "--auto",
        help="choose the imitator among candidates on the held-out blocks, within --seconds; "
        "reports the estimate of held-out fidelity",
    ),
    cross_check: float | None = typer.Option(
        None,
        "--cross-check",
        metavar="SECONDS",
        help="after the fit, fit the same imitator on three quadrants of the example for "
        "SECONDS, measure it on the fourth, for each quadrant: a second estimate of fidelity "
        "on new images (it can err either way; the held-out blocks' is an upper one)",
    ),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Fit an imitator to one INPUT OUTPUT pair (or several); writes the run folder to --out."""
    from onepair import checkpoint
    from onepair.fit import fit
    from onepair.models import ARCHITECTURES
    from onepair.pairs import Pair
    from onepair.presets import preset as get_preset
    from onepair.presets import preset_for
    from onepair.samples import read

    given = {k: v for k, v in locals().items() if v is not None}
    try:
        pairs = [Pair.of(read(str(x)), read(str(y))) for x, y in _example_files(examples)]
        pair = pairs[0]
        saved = checkpoint.saved_settings(out_dir) if resume and out_dir.is_dir() else None
        name = preset_for(preset, device or "auto", saved["fit"] if saved else None)
        model, config = get_preset(name, pair.in_channels, pair.out_channels, pair.scale)
        if architecture is not None and architecture != _arch_name(model):
            if architecture not in ARCHITECTURES:
                _fail(
                    f"architecture is {architecture!r}; expected one of {', '.join(ARCHITECTURES)}"
                )
            model = ARCHITECTURES[architecture][0]()
        own = {f.name for f in fields(model)}
        every = {f.name for t, _ in ARCHITECTURES.values() for f in fields(t)}
        other = every - own
        if auto:
            chosen = sorted(every & set(given))
            if architecture is not None or chosen or resume:
                flags = ", ".join("--" + n.replace("_", "-") for n in chosen) or "--architecture"
                _fail(f"--auto chooses the imitator itself; drop {'--resume' if resume else flags}")
        if misplaced := sorted(other & set(given)):
            flags = ", ".join("--" + name.replace("_", "-") for name in misplaced)
            _fail(
                f"{flags}: not a setting of the {_arch_name(model)} architecture "
                f"(its settings: {', '.join(sorted(own))}); --preset unet (or --architecture) "
                "for another"
            )
        model = replace(model, **{f.name: given[f.name] for f in fields(model) if f.name in given})
        config = replace(
            config, **{f.name: given[f.name] for f in fields(config) if f.name in given}
        )
        if seconds is not None and steps is None:
            config = replace(config, steps=10**9)
        if cross_check is not None:  # before the fit: a bad example fails at once
            from onepair.auto import CANDIDATES
            from onepair.crosscheck import check_quadrants

            for candidate in CANDIDATES.values() if auto else [model]:
                check_quadrants(pairs, candidate, config.crop, cross_check)
        if auto:
            from onepair.auto import auto_fit

            imitator = auto_fit(
                pairs if len(pairs) > 1 else pair, config, out_dir, show_progress=not quiet
            )
        else:
            imitator = fit(
                pairs if len(pairs) > 1 else pair,
                model,
                config,
                out_dir=out_dir,
                resume=resume,
                show_progress=not quiet,
            )
        if cross_check is not None:
            from onepair.crosscheck import cross_check as run_cross_check

            imitator.metrics["cross_check"] = run_cross_check(
                pairs, imitator.model, config, cross_check, show_progress=not quiet
            )
            imitator.save(out_dir)
    except (ValueError, FileExistsError, PermissionError, FileNotFoundError) as error:
        _fail(str(error))
    m = imitator.metrics
    linear = imitator.network.linear
    solved = sum(t.numel() for t in linear.state_dict().values()) if linear is not None else 0
    out.print(
        f"imitator written to {out_dir}: {m['num_params']:,} parameters"
        + (f" and {solved:,} solved in the linear path" if solved else "")
        + f", receptive field "
        f"{m['receptive_field']}x{m['receptive_field']}, {m['steps']} steps in "
        f"{m['seconds']:.1f} s"
    )
    out.print(
        f"held-out PSNR {_db(m['val_psnr'])} dB (input itself: {_db(m['val_floor_psnr'])} dB)"
    )
    if "auto" in m:
        trials = ", ".join(f"{k} {_db(v)} dB" for k, v in m["auto"]["candidates"].items())
        out.print(f"--auto chose {m['auto']['chosen']} on the held-out blocks ({trials})")
        out.print(
            "estimated PSNR against the target on new images like the example: "
            f"{_db(m['auto']['estimate_psnr'])} dB (an upper estimate: other content can be "
            "harder to copy; docs/FIDELITY.md measures how much)"
        )
    if "cross_check" in m:
        c = m["cross_check"]
        out.print(
            f"cross-check ({len(c['folds'])} fits of {c['seconds_each']:g} s on three quadrants "
            f"of the example, each measured on the fourth): {_db(c['psnr'])} dB (quadrants "
            f"{_db(min(c['folds']))} to {_db(max(c['folds']))} dB), an estimate for new "
            "images that can be low or high (docs/FIDELITY.md measures by how much)"
        )
    if len(imitator.equivariances) > 1:
        how = "found on the held-out blocks" if m.get("equivariance_psnr") else "assumed"
        solved = len(m.get("linear_solved_on") or []) > 1  # the path commutes with them
        trained = m["steps"] and imitator.fit.get("augment") != "test"
        what = (
            "path solved on and network trained with"
            if trained and solved
            else "trained with"
            if trained
            else "solved on"
            if solved
            else "apply --ensemble can average over"
        )
        out.print(f"{what} flips and rotations ({how}): {', '.join(imitator.equivariances)}")


def _example_files(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(input, output) files from arguments: alternating images, or pair folders."""
    from onepair.images import SUFFIXES

    found, loose = [], []
    for path in paths:
        if path.is_dir():
            pick = {
                role: sorted(p for p in path.glob(f"{role}.*") if p.suffix.lower() in SUFFIXES)
                for role in ("input", "output")
            }
            if len(pick["input"]) != 1 or len(pick["output"]) != 1:
                raise ValueError(
                    f"{path} is a folder but not a pair folder: expected one input.* and one "
                    f"output.* image in it (as `onepair extract` writes)"
                )
            found.append((pick["input"][0], pick["output"][0]))
        else:
            loose.append(path)
            if len(loose) == 2:
                found.append((loose[0], loose[1]))
                loose = []
    if loose:
        raise ValueError(
            f"{loose[0]} has no partner: give images as INPUT OUTPUT pairs "
            f"({len(paths)} argument(s) arrived)"
        )
    return found


def _arch_name(model: object) -> str:
    from onepair.models import config_to_dict

    return str(config_to_dict(model)["architecture"])
