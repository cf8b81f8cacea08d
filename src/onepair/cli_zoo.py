"""``onepair zoo train-teacher``: the teachers that the teacher-* zoo targets load.

Registered on :data:`onepair.cli.app` when this module is imported.
"""

from __future__ import annotations

from pathlib import Path

import typer

from onepair.cli import _fail, app, out
from onepair.teachers import STEPS

zoo_app = typer.Typer(no_args_is_help=True, help="The zoo of target models: train teachers.")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("train-teacher")
def train_teacher_command(
    task: str = typer.Argument(..., help="denoiser | stain | tissue | microscopy-denoiser"),
    out_dir: Path | None = typer.Option(
        None,
        "-o",
        "--out",
        help="run folder; default $ONEPAIR_HOME/teachers/TASK-ARCHITECTURE-LOSS, where the "
        "teacher-* zoo names look",
    ),
    architecture: str = typer.Option("unet", help="unet | plain | attention"),
    loss: str | None = typer.Option(
        None, help="l2 | l1 | perceptual | adversarial (default l2; tissue: cross-entropy)"
    ),
    steps: int = typer.Option(
        STEPS,
        help="step budget: the same teacher on every machine; 0: none (then --seconds decides)",
    ),
    seconds: float = typer.Option(0.0, help="wall-clock budget, whichever ends first; 0: none"),
    width: int = typer.Option(16, help="channels at full resolution"),
    batch_size: int = typer.Option(8),
    crop: int = typer.Option(48),
    lr: float = typer.Option(2e-3),
    image: list[str] | None = typer.Option(
        None, "--image", help="denoisers: train only on these built-in images (repeatable)"
    ),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    threads: int | None = typer.Option(None, help="torch CPU threads"),
    resume: bool = typer.Option(False, help="continue an interrupted training in --out"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Train a teacher on many bundled images; the teacher-* zoo names then use it."""
    import torch

    from onepair.teacher_train import train_teacher
    from onepair.teachers import default_loss, teacher_dir

    if threads:
        torch.set_num_threads(threads)
    try:
        loss = loss or default_loss(task)
        folder = out_dir or teacher_dir(task, architecture, loss)
        teacher = train_teacher(
            task,
            folder,
            architecture,
            loss,
            seconds=seconds if seconds > 0 else None,
            steps=steps if steps > 0 else None,
            seed=seed,
            device=device,
            show_progress=not quiet,
            width=width,
            batch_size=batch_size,
            crop=crop,
            lr=lr,
            images=tuple(image) if image else None,
            resume=resume,
        )
    except (ValueError, FileExistsError, ModuleNotFoundError) as error:
        _fail(str(error))
    m = teacher.metrics
    named = Path(folder).resolve() == teacher_dir(task, architecture, loss).resolve()
    use = f"teacher-{task}:architecture={architecture},loss={loss} or " if named else ""
    out.print(
        f"teacher written to {folder}: {m['steps']} steps in {m['seconds']:.0f} s, training "
        f"loss {m['training_loss']:.3g}; as a target: {use}run:{folder}",
        highlight=False,
    )
