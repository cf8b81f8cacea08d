"""``onepair audit``: the owner's audit, one command, one report.

Registered on :data:`onepair.cli.app` when this module is imported; parses,
calls :func:`onepair.audit.run_audit`, prints.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from onepair.cli import _fail, app, err, out


@app.command("audit")
def audit_command(
    target: str = typer.Option(..., help="the model to audit: a target spec (see `targets`)"),
    example: str = typer.Option(
        ..., help="the example input the owner would publish: a file or builtin:NAME"
    ),
    out_dir: Path = typer.Option(..., "-o", "--out", help="report folder (resumes if it exists)"),
    seconds: float = typer.Option(60.0, help="fit time of each imitator"),
    defense_seconds: float = typer.Option(20.0, help="fit time of each copy in the sweep"),
    defense: list[str] = typer.Option(
        [],
        help="NAME:STRENGTH to try, repeatable (default: the whole sweep): jpeg:50, noise:5, "
        "downscale:2, visible-watermark:0.3, invisible-watermark:dwtDctSvd, perturbation:35",
    ),
    held_out: list[str] = typer.Option(
        [], help="held-out image (file or builtin:NAME), repeatable; default: 4 photographs"
    ),
    max_cost: float = typer.Option(
        35.0, help="dB: how close the published output must stay to the true one"
    ),
    seed: int = typer.Option(0),
    quiet: bool = typer.Option(False, help="no progress bars"),
) -> None:
    """Audit how copyable one published example leaves a model, and what defences buy."""
    from dataclasses import replace

    from onepair.audit import AuditConfig, run_audit
    from onepair.defenses import parse_defense

    try:
        config = AuditConfig(
            seconds=seconds,
            defense_seconds=defense_seconds,
            defenses=tuple(parse_defense(d) for d in defense) or None,
            max_cost=max_cost,
            seed=seed,
        )
        if held_out:
            config = replace(config, held_out=tuple(held_out))
        if seconds <= 0 or defense_seconds <= 0:
            raise ValueError(
                f"--seconds and --defense-seconds must be > 0; got {seconds} and {defense_seconds}"
            )
        data = run_audit(
            target,
            example,
            out_dir,
            config,
            say=lambda text: err.print(text, highlight=False),
            show_progress=not quiet,
            command=shlex.join(["onepair", *sys.argv[1:]]),
        )
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as error:
        _fail(str(error))
        return
    verdict = data["verdict"]
    out.print(f"exposure: {verdict['exposure']}", highlight=False)
    out.print(verdict["summary"], highlight=False)
    out.print(verdict["recommendation"], highlight=False)
    out.print(f"written {out_dir / 'report.html'} and {out_dir / 'report.json'}", highlight=False)
