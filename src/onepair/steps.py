"""One training step of a fit: crops, the loss on the pixels not held out, an Adam update.

:class:`EagerStep` runs it as Python calls, with crop positions from the fit's
seeded CPU generator (so a seed gives the same crops on every device). On a
CUDA device the U-Net imitator's step is bound by launching its kernels, not
by their arithmetic (docs/PERFORMANCE.md, "On a GPU"), so :class:`GraphStep`
captures the whole step once as a CUDA graph -- crop positions drawn on the
device, the gather, forward, backward and the fused Adam update -- and replays
it: one launch per step. Its learning rate lives in a device tensor that the
graph reads, so the schedule goes on changing it between replays.

Every call is one real step: a graph step's first ``CUDA_GRAPH_WARMUP`` calls
run eagerly on a side stream (they create Adam's state and the gradients that
the capture needs), the next captures the graph and replays it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from onepair.crops import Batch, CropSampler
from onepair.fitconfig import Loss

log = logging.getLogger("onepair")

# On a CUDA device (docs/PERFORMANCE.md, "On a GPU"): Adam's update fused into one kernel
# (15% more steps per second on an H200), and the whole step replayed as a CUDA graph.
CUDA_FUSED_ADAM = True
CUDA_GRAPHS = True
CUDA_GRAPH_WARMUP = 3


class Step(Protocol):
    graphed: bool

    def __call__(self, lr: float) -> torch.Tensor:
        """Run one step at learning rate ``lr``; its loss, a detached device scalar."""
        ...


def loss_of(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, kind: Loss
) -> torch.Tensor:
    """Mean squared (or absolute) error over the pixels of weight 1 (all if no weights)."""
    if weight is None:
        return F.mse_loss(prediction, target) if kind is Loss.L2 else F.l1_loss(prediction, target)
    error = (prediction - target).square() if kind is Loss.L2 else (prediction - target).abs()
    return (error * weight).sum() / (weight.sum() * error.shape[1]).clamp(min=1.0)


def adam(network: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """The fit's optimizer: on CUDA fused (one kernel) and, where steps are graphed,
    capturable, with its learning rate in a device tensor the graph reads."""
    if device.type != "cuda":
        return torch.optim.Adam(network.parameters(), lr=lr)
    if CUDA_GRAPHS:
        rate = torch.tensor(lr, dtype=torch.float32, device=device)
        return torch.optim.Adam(network.parameters(), lr=rate, fused=True, capturable=True)
    return torch.optim.Adam(network.parameters(), lr=lr, fused=True if CUDA_FUSED_ADAM else None)


def make_step(
    network: torch.nn.Module,
    sampler: CropSampler,
    optimizer: torch.optim.Optimizer,
    batch: int,
    kind: Loss,
    generator: torch.Generator,
) -> Step:
    """A :class:`GraphStep` where it can run (a CUDA device, an optimizer from :func:`adam`
    with graphs on, examples whose crops can be drawn on the device), else an
    :class:`EagerStep`."""
    device = sampler.x[0].device
    graphable = (
        device.type == "cuda"
        and CUDA_GRAPHS
        and all(g.get("capturable") and torch.is_tensor(g["lr"]) for g in optimizer.param_groups)
        and sampler.draws_on_device
    )
    if graphable:
        return GraphStep(network, lambda: sampler.sample_on_device(batch), optimizer, kind)
    return EagerStep(network, lambda: sampler.sample(batch, generator), optimizer, kind)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)  # in place: a captured graph reads this tensor
        else:
            group["lr"] = lr


class EagerStep:
    """A step as Python calls: draw a batch, loss, backward, update."""

    graphed = False

    def __init__(
        self,
        network: torch.nn.Module,
        draw: Callable[[], Batch],
        optimizer: torch.optim.Optimizer,
        kind: Loss,
    ):
        self.network, self.draw, self.optimizer, self.kind = network, draw, optimizer, kind

    def __call__(self, lr: float) -> torch.Tensor:
        _set_lr(self.optimizer, lr)
        return self._run()

    def _run(self) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        return self._update().detach()

    def _update(self) -> torch.Tensor:
        """Draw, loss, backward, Adam: the part of a step that a graph captures."""
        x, y, w = self.draw()
        loss = loss_of(self.network.residual(x), y, w, self.kind)  # type: ignore[operator]
        loss.backward()
        self.optimizer.step()
        return loss


class GraphStep(EagerStep):
    """A step replayed from a CUDA graph (``draw`` must itself be capturable: no host
    copies, no synchronisation). Falls back to eager steps if the capture fails."""

    def __init__(
        self,
        network: torch.nn.Module,
        draw: Callable[[], Batch],
        optimizer: torch.optim.Optimizer,
        kind: Loss,
    ):
        super().__init__(network, draw, optimizer, kind)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None
        self.calls = 0
        self.failed = False
        self.stream = torch.cuda.Stream(device=next(network.parameters()).device)

    @property
    def graphed(self) -> bool:  # type: ignore[override]
        return self.graph is not None

    def __call__(self, lr: float) -> torch.Tensor:
        _set_lr(self.optimizer, lr)
        self.calls += 1
        if self.graph is None and not self.failed:
            if self.calls <= CUDA_GRAPH_WARMUP:
                return self._on_side_stream()
            self._capture()
        if self.graph is None:
            return self._run()
        self.graph.replay()
        return self.loss.clone()  # type: ignore[union-attr]  # the next replay overwrites it

    def _on_side_stream(self) -> torch.Tensor:
        current = torch.cuda.current_stream(self.stream.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            loss = self._run()
        current.wait_stream(self.stream)
        return loss

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with torch.cuda.graph(graph):
                loss = self._update()
        except RuntimeError as error:  # a step that cannot be captured still trains, eagerly
            log.warning(
                "CUDA graph capture of the training step failed (%s); running eagerly", error
            )
            self.failed = True
            self.optimizer.zero_grad(set_to_none=True)
            return
        self.graph, self.loss = graph, loss.detach()
