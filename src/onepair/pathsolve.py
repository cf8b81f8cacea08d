"""Solving an imitator's linear path on the examples, and on the flips and rotations
the held-out blocks show the target commutes with (:func:`onepair.fit.fit`'s steps)."""

from __future__ import annotations

import logging

import torch

from onepair.checkpoint import State
from onepair.fitconfig import Augment, FitConfig
from onepair.models.network import Network
from onepair.pairs import Pair
from onepair.validation import Holdout, Holdouts, equivariances

log = logging.getLogger("onepair")


def solve_path(
    path: torch.nn.Module, pairs: list[Pair], holdouts: list[Holdout], seed: int, augment: list[str]
) -> None:
    """Solve the linear path on the examples and their transforms ``augment`` by least
    squares, leaving out the held-out blocks."""
    more = f" and {len(augment) - 1} flips and rotations" if len(augment) > 1 else ""
    log.info("solving the %dx%d linear path on the example%s", path.kernel, path.kernel, more)
    xs, ys = [p.input for p in pairs], [p.output for p in pairs]
    keep = [~h.mask for h in holdouts] if holdouts else None
    path.solve(xs, ys, seed=seed, keep=keep, transforms=augment)


def path_transforms(
    network: Network,
    pairs: list[Pair],
    holdouts: list[Holdout],
    validate: Holdouts,
    state: State,
    config: FitConfig,
    device: torch.device,
    solved_on: list[str],
) -> tuple[list[str], dict[str, float], list[str]]:
    """The transforms the held-out blocks show the path equivariant to (they decide
    apply's --ensemble); with ``augment=auto`` the path is solved again on them, at the
    start of a fit, and the blocks keep the better solve. -> (transforms, their scores,
    the transforms the kept path was solved on)."""
    network.eval()
    augment, equivariance = equivariances(network, validate, device, config.equivariance_tolerance)
    solves = config.augment is Augment.AUTO and network.linear is not None and state.step == 0
    if len(augment) > 1 and solves:
        solve_path(network.linear, pairs, holdouts, config.seed, augment)
        score, plain = validate(network, device), state.best_psnr
        log.info("held-out blocks: %.2f dB solved on the transforms too, %.2f dB "
                 "without; the better is kept", score, plain)  # fmt: skip
        if score > plain:
            state.keep_best(network, score)
            solved_on = augment
        else:
            network.load_state_dict(state.best_weights)
    return augment, equivariance, solved_on
