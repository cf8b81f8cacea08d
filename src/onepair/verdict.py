"""The audit's plain-language verdict, from its numbers alone (a pure function).

Exposure is judged by the best copy's held-out PSNR against the target:
``high`` at 35 dB and above (differences hard to see), ``moderate`` from 28 dB,
``low`` below that or when the copy is within 1 dB of the identity floor
(returning the input unchanged does as well). The recommended defence is the
one that lowers the copy's PSNR the most among those whose cost to the owner
stays within ``max_cost`` (the published output at least that many dB from the
true one); a defence that leaves a signature found in the copies wins ties.
"""

from __future__ import annotations

from typing import Any

HIGH, MODERATE = 35.0, 28.0


def exposure(psnr: float, floor: float | None) -> str:
    """``"high"``, ``"moderate"`` or ``"low"`` for a copy at ``psnr`` dB (floor in dB)."""
    if floor is not None and psnr - floor < 1.0:
        return "low"
    return "high" if psnr >= HIGH else "moderate" if psnr >= MODERATE else "low"


def _found(row: dict[str, Any]) -> bool:
    evidence = row.get("evidence") or {}
    return bool(evidence.get("rate")) and not evidence.get("control_rate")


def recommend(defenses: list[dict[str, Any]], max_cost: float) -> dict[str, Any] | None:
    """The row of ``defenses`` to recommend, or ``None`` when none lowers the copy
    by at least 1 dB within ``max_cost``."""
    undefended = next((r for r in defenses if r["defense"] == "none"), None)
    if undefended is None:
        return None
    affordable = [
        r
        for r in defenses
        if r["defense"] != "none" and (r["cost_psnr"] is None or r["cost_psnr"] >= max_cost)
    ]
    useful = [r for r in affordable if undefended["psnr"] - r["psnr"] >= 1.0]
    if not useful:
        return None
    return min(useful, key=lambda r: (round(r["psnr"], 1), not _found(r)))


def verdict(data: dict[str, Any], max_cost: float) -> dict[str, Any]:
    """``{"exposure", "summary", "recommended", "recommendation", "details"}`` for report data."""
    attack = data["attack"]
    best = next(i for i in attack["imitators"] if i["name"] == attack["best"])
    floor = attack.get("floor_psnr")
    level = exposure(best["psnr"], floor)
    floor_text = f" (returning the input unchanged gives {floor:.1f} dB)" if floor else ""
    summary = (
        f"One published pair lets an attacker copy this model to {best['psnr']:.1f} dB PSNR "
        f"(SSIM {best['ssim']:.3f}) on images it never saw{floor_text}, with a "
        f"{best['num_params']:,}-parameter imitator fitted in {best['fit_seconds']:.0f} s "
        "on this machine."
    )
    defenses = data.get("defenses") or []
    chosen = recommend(defenses, max_cost)
    details = []
    erf = data.get("erf")
    if erf:
        details.append(
            f"The model's output depends on a neighbourhood of radius {erf['radius']:.1f} "
            "pixels (95% of its effective receptive field); the smaller it is, the more "
            "one example pins the model down."
        )
    for row in defenses:
        evidence = row.get("evidence")
        if evidence and evidence.get("rate") is not None:
            seen = round(evidence["rate"] * evidence["images"])
            details.append(
                f"{row['label']}: found in {seen} of {evidence['images']} outputs of the copy "
                f"(score {evidence['score']:.2f}, threshold {evidence['threshold']:.2f}); "
                f"{round((evidence['control_rate'] or 0) * evidence['images'])} false alarms "
                "on a copy fitted on the undefended pair."
            )
    if chosen is None:
        recommendation = (
            f"No defence tried lowers the copy by 1 dB or more while keeping the published "
            f"output within {max_cost:.0f} dB of the true one. Publish fewer or smaller "
            "examples, or accept a larger cost."
        )
    else:
        undefended = next(r for r in defenses if r["defense"] == "none")
        cost = (
            "no visible cost"
            if chosen["cost_psnr"] is None
            else (f"the published output stays at {chosen['cost_psnr']:.1f} dB from the true one")
        )
        recommendation = (
            f"Publish with {chosen['label']}: a copy fitted on the published pair drops from "
            f"{undefended['psnr']:.1f} dB (the same fit on the undefended pair) to "
            f"{chosen['psnr']:.1f} dB, and {cost}."
        )
        if _found(chosen):
            recommendation += (
                " Its signature also shows up in the copy's outputs: evidence of copying."
            )
    return {
        "exposure": level,
        "summary": summary,
        "recommended": chosen["label"] if chosen else None,
        "recommendation": recommendation,
        "details": details,
    }
