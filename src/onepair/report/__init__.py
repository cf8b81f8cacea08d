"""The audit report: report.json's data as one self-contained HTML page (DESIGN.md, user 2).

:func:`render` writes ``folder/report.html`` with no external assets: every image
(the PNG files the audit wrote, and the plots of :mod:`onepair.report.plots`) is
inlined as a ``data:`` URI, the CSS is inline, there is no script. Every string
taken from the data is HTML-escaped (the target spec is user text). Missing
optional parts (no ERF, no defences, no evidence, a missing image file) become a
short note in the page instead of an error.

Sections: verdict; how well one published pair copies the model (imitators and
fidelity against training time); target vs imitation on held-out images;
effective receptive field; defences (table and cost/fidelity trade-off); method.

>>> render(json.loads(Path("audit-out/report.json").read_text()), "audit-out")  # doctest: +SKIP
PosixPath('audit-out/report.html')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from onepair.atomic import write_text
from onepair.report import html as h
from onepair.report import plots
from onepair.report.html import DASH

__all__ = ["render", "recommended_index", "evidence_text"]

EXPOSURES = ("high", "moderate", "low")


def render(data: Mapping[str, Any], folder: str | Path, name: str = "report.html") -> Path:
    """Write the audit report for ``data`` (report.json's dict) to ``folder/name``.

    Image fields of ``data`` are paths relative to ``folder``. Returns the path
    of the written HTML file (written atomically).
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"report data is a {type(data).__name__}; expected the dict of report.json")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"report folder {folder} does not exist")
    target = str(data.get("target") or "unknown target")
    body = "\n".join(
        section(data, folder)
        for section in (_header, _attack, _samples, _erf, _defenses, _method)
    )  # fmt: skip
    page = Template(files("onepair.report").joinpath("template.html").read_text("utf-8"))
    text = page.substitute(title=h.text(f"onepair audit: {target}"), body=body)
    return write_text(folder / name, text)


def _header(data: Mapping[str, Any], folder: Path) -> str:
    target = data.get("target") or "unknown target"
    example = data.get("example") or {}
    verdict = data.get("verdict") or {}
    exposure = str(verdict.get("exposure") or "unknown").lower()
    klass = exposure if exposure in EXPOSURES else "unknown"
    size = f"{example.get('width', '?')}\u00d7{example.get('height', '?')}"
    channels = f"{example.get('in_channels', '?')}\u2192{example.get('out_channels', '?')} channels"
    scale = example.get("scale")
    scale_text = f", scale \u00d7{h.text(scale)}" if scale not in (None, 1) else ""
    details = "".join(f"<li>{h.text(d)}</li>" for d in verdict.get("details") or [])
    advice = verdict.get("recommendation")
    advice = f"<p><b>Recommendation.</b> {h.text(advice)}</p>" if advice else ""
    version = h.text(data.get("onepair_version", "?"))
    thumbs = h.figure(
        [
            (h.image(folder, example.get("input"), "example input", "thumb"), "published input"),
            (h.image(folder, example.get("output"), "example output", "thumb"), "published output"),
        ]
    )
    return f"""<header>
<h1>onepair audit: <span class="target">{h.text(target)}</span></h1>
<p class="meta">{h.date(data.get("created"))} &middot; onepair {version} &middot; example
<code>{h.text(example.get("source", "?"))}</code>, {size} px, {channels}{scale_text}</p>
</header>
<div class="verdict {klass}">
<div class="level">{h.text(exposure)} exposure</div>
<p class="summary">{h.text(verdict.get("summary") or "No verdict was recorded.")}</p>
{advice}
{f"<ul>{details}</ul>" if details else ""}
</div>
<section><h2>The published example</h2>{thumbs}</section>"""


def _attack(data: Mapping[str, Any], folder: Path) -> str:
    attack = data.get("attack") or {}
    imitators = [i for i in attack.get("imitators") or [] if isinstance(i, Mapping)]
    floor = attack.get("floor_psnr")
    head = ["imitator", "description", "parameters", "receptive field", "fit time",
            "held-out PSNR (dB)", "SSIM", "floor (dB)"]  # fmt: skip
    rows = []
    for imitator in imitators:
        rf = imitator.get("receptive_field")
        best = " <b>(best)</b>" if imitator.get("name") == attack.get("best") else ""
        rows.append([
            f"{h.text(imitator.get('name', '?'))}{best}",
            h.text(imitator.get("description") or ""),
            h.num(imitator.get("num_params"), 0),
            f"{h.num(rf, 0)}\u00d7{h.num(rf, 0)} px" if rf is not None else DASH,
            h.duration(imitator.get("fit_seconds")),
            f"{h.num(imitator.get('psnr'), 2)} \u00b1 {h.num(imitator.get('psnr_std'), 2)}",
            h.num(imitator.get("ssim"), 3),
            h.num(floor, 2),
        ])  # fmt: skip
    table = h.table(head, rows, {2, 3, 4, 5, 6, 7}) if rows else h.note("No imitator was fitted.")
    plot = h.plot(plots.fidelity_curve(imitators, floor), "fidelity vs training time",
                 "No training curve was recorded.")  # fmt: skip
    return f"""<section><h2>How well one published pair copies the model</h2>
<p>Each imitator is a network fitted only on the published input/output pair, then run on
images it never saw; its outputs are compared with the real model's outputs there.</p>
{table}
<figure class="plot">{plot}<figcaption>Fidelity vs training time: held-out PSNR of each
imitator during its fit; the dashed line is the identity floor.</figcaption></figure>
</section>"""


def _samples(data: Mapping[str, Any], folder: Path) -> str:
    samples = [s for s in (data.get("attack") or {}).get("samples") or [] if isinstance(s, Mapping)]
    rows = []
    for s in samples:
        name = h.text(s.get("name", "?"))
        scale = s.get("error_scale")
        error = f"|error| \u00d7 {h.num(scale, 0)}" if scale is not None else "|error|"
        panels = [(h.image(folder, s.get(key), f"{s.get('name', '?')} {cap}"), cap)
                  for key, cap in (("input", "input"), ("target", "target output"),
                                   ("imitation", "imitation"), ("error", error))]  # fmt: skip
        score = f"PSNR {h.num(s.get('psnr'), 2)} dB &middot; SSIM {h.num(s.get('ssim'), 3)}"
        rows.append(
            f'<div class="sample"><h3>{name} <span class="score">{score}</span></h3>'
            f"{h.figure(panels, 'row four')}</div>"
        )
    body = "".join(rows) or h.note("No side-by-side samples were recorded.")
    return f"""<section><h2>Target vs imitation on images it never saw</h2>
<p>The best imitator ({h.text((data.get("attack") or {}).get("best") or DASH)}) against the
real model on held-out images; the error map is the absolute difference, magnified.</p>
{body}</section>"""


def _erf(data: Mapping[str, Any], folder: Path) -> str:
    erf = data.get("erf")
    explain = """<p>The effective receptive field (ERF) is how far a change to one input pixel
reaches in the output: the mean |f(x') &minus; f(x)| when x' differs from x only at the centre
pixel, averaged over noisy test images (log colour scale). A model whose output at a pixel
depends only on a small neighbourhood is easy to copy from one pair: every patch of the
published example is a training sample for that local rule, and one image holds thousands of
them. A large ERF means the model uses wide context, which one example covers far less
well.</p>"""
    if not isinstance(erf, Mapping):
        return f"""<section><h2>Effective receptive field</h2>{explain}
{h.note("The effective receptive field was not measured (the stage failed or was skipped).")}
</section>"""
    mass = plots.number(erf.get("mass"))
    within = f" (holding {mass:.0%} of the response)" if mass is not None else ""
    panels = [(h.image(folder, erf.get("image"), "target ERF", "heat"),
               f"target: radius {h.num(erf.get('radius'), 1)} px{within}")]  # fmt: skip
    if erf.get("imitator_image") or erf.get("imitator_radius") is not None:
        panels.append((h.image(folder, erf.get("imitator_image"), "imitator ERF", "heat"),
                       f"imitator: radius {h.num(erf.get('imitator_radius'), 1)} px"))  # fmt: skip
    how = (
        f"Measured on {h.text(erf.get('images', '?'))} images with noise &sigma; = "
        f"{h.num(erf.get('sigma'), 0)} and a centre change of {h.num(erf.get('delta'), 2)}."
    )
    return f"""<section><h2>Effective receptive field</h2>{explain}
{h.figure(panels)}<p class="small">{how}</p></section>"""


def evidence_text(evidence: Any, copies: int) -> str:
    """Plain words for a defence's evidence of copying (``copies`` held-out copy outputs).

    >>> evidence_text({"kind": "signature", "rate": 1.0, "control_rate": 0.0,
    ...                "correlation": 0.95}, 4)
    'signature found in 4/4 copies (corr 0.95; false positives 0/4)'
    """
    if not isinstance(evidence, Mapping):
        return DASH
    kind = str(evidence.get("kind") or "mark")

    def count(rate: Any) -> str:
        value = plots.number(rate)
        if value is None:
            return "?"
        return f"{round(value * copies)}/{copies}" if copies else f"{value:.0%}"

    extra = []
    if evidence.get("bit_accuracy") is not None:
        extra.append(f"bit accuracy {h.num(evidence.get('bit_accuracy'), 2)}")
    if evidence.get("correlation") is not None:
        extra.append(f"corr {h.num(evidence.get('correlation'), 2)}")
    if kind == "watermark" and evidence.get("in_published") is not None:
        extra.append(f"in published {h.num(evidence.get('in_published'), 2)}")
    if evidence.get("control_rate") is not None:
        extra.append(f"false positives {count(evidence.get('control_rate'))}")
    where = "copies" if copies else "of copies"
    detail = f" ({'; '.join(extra)})" if extra else ""
    return f"{h.text(kind)} found in {count(evidence.get('rate'))} {where}{detail}"


def recommended_index(defenses: list[Mapping[str, Any]], verdict: Mapping[str, Any]) -> int | None:
    """Index of the recommended defence in ``defenses``, or None when it is not clear.

    ``verdict["recommended"]`` is a defence label; a defence kind (``"jpeg"``) is also
    accepted: its only entry, or the one whose label or strength (as a whole number,
    ``q50``, ``35 dB``) the recommendation's text names.
    """
    wanted = verdict.get("recommended")
    if not wanted:
        return None
    for i, d in enumerate(defenses):
        if d.get("label") == wanted:
            return i
    kind = [i for i, d in enumerate(defenses) if d.get("defense") == wanted]
    if len(kind) == 1:
        return kind[0]
    text = str(verdict.get("recommendation") or "")
    named = [i for i in kind if str(defenses[i].get("label")) in text]
    if not named:
        strengths = {i: plots.strength(defenses[i].get("strength")) for i in kind}
        named = [i for i, s in strengths.items()
                 if s and re.search(rf"(?<![\d.]){re.escape(s)}(?!\d|\.\d)", text)]  # fmt: skip
    return named[0] if len(named) == 1 else None


def _defenses(data: Mapping[str, Any], folder: Path) -> str:
    defenses = [d for d in data.get("defenses") or [] if isinstance(d, Mapping)]
    title = "<section><h2>Defences</h2>"
    if not defenses:
        return title + h.note("No defence was evaluated.") + "</section>"
    verdict = data.get("verdict") or {}
    best = recommended_index(defenses, verdict)
    base = next((plots.number(d.get("psnr")) for d in defenses if d.get("defense") == "none"), None)
    copies = len(data.get("held_out") or [])
    rows = []
    for i, d in enumerate(defenses):
        fidelity = plots.number(d.get("psnr"))
        change = DASH
        if base is not None and fidelity is not None and d.get("defense") != "none":
            change = f"{'+' if fidelity >= base else ''}{h.num(fidelity - base, 1)} dB"
        label = h.text(d.get("label") or d.get("defense", "?"))
        rows.append([
            f"{label} <b class='rec'>recommended</b>" if i == best else label,
            "none" if d.get("cost_psnr") is None else h.num(d.get("cost_psnr"), 1),
            "none" if d.get("cost_ssim") is None else h.num(d.get("cost_ssim"), 3),
            h.num(d.get("psnr"), 2),
            h.num(d.get("ssim"), 3),
            change,
            evidence_text(d.get("evidence"), copies),
        ])  # fmt: skip
    head = ["defence", "cost: PSNR (dB)", "cost: SSIM", "copy PSNR (dB)", "copy SSIM",
            "change vs undefended", "evidence of copying"]  # fmt: skip
    floor = (data.get("attack") or {}).get("floor_psnr")
    plot = h.plot(plots.tradeoff(defenses, best, floor), "defence trade-off",
                 "No defence has a copy fidelity to plot.")  # fmt: skip
    return f"""{title}
<p>Each defence changes the published output before an attacker sees it. <i>Cost</i> is how far
the published output moves from the true one (PSNR; "none" = unchanged); <i>copy fidelity</i> is
how well an imitator fitted on that published pair reproduces the model on held-out images.
A good defence lowers copy fidelity at little cost, or leaves evidence in the copies.</p>
{h.table(head, rows, {1, 2, 3, 4, 5})}
<figure class="plot">{plot}<figcaption>Trade-off: cost to the owner (right = cheaper) against copy
fidelity (lower = better protected). Undefended: dashed line and the "no change" column.
</figcaption></figure></section>"""


def _method(data: Mapping[str, Any], folder: Path) -> str:
    settings = data.get("settings") or {}
    rows = (
        [[h.text(k), h.text(v)] for k, v in settings.items()]
        if isinstance(settings, Mapping)
        else []
    )
    table = h.table(["setting", "value"], rows, {1}, "narrow") if rows else h.note("No settings.")
    held = ", ".join(f"<code>{h.text(name)}</code>" for name in data.get("held_out") or [])
    held = held or DASH
    return f"""<section class="method"><h2>Method</h2>
<p>Command:</p><pre>{h.text(data.get("command") or DASH)}</pre>
<p>Queries to the target: {h.num(data.get("queries"), 0)} images &middot; wall time
{h.duration(data.get("seconds"))} &middot; held-out images: {held}.</p>
{table}
<p>PSNR (peak signal-to-noise ratio, dB) compares the imitation with the real model's output on
the same image: higher is closer, and every 10 dB is a tenfold smaller squared error. The
<i>identity floor</i> is the PSNR of the unchanged input against the model's output; a copy
that does not beat it has learned nothing about the model.</p></section>"""
