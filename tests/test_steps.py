"""steps.py and the device-side crops it graphs: eager and graphed steps agree, crops
drawn on the device are aligned and cover every example, a device-held learning rate
survives a checkpoint. The CUDA tests run where a GPU is visible (benchmarks/gpu.sh)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import TINY_FIT, TINY_MODEL
from onepair import checkpoint, steps
from onepair.crops import Batch, CropSampler
from onepair.fit import fit
from onepair.fitconfig import FitConfig, Loss
from onepair.models import Skip, build
from onepair.pairs import Pair
from onepair.targets import load_target

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def coded_pair(index: int, h: int = 20, w: int = 20, scale: int = 2) -> Pair:
    """An example whose every input pixel names its example, row and column, and whose
    output pixel (r, c) names the input pixel it lies in."""
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.stack([np.full_like(rows, index), rows, cols], axis=-1)
    y = np.repeat(np.repeat(x, scale, axis=0), scale, axis=1)
    return Pair(x, y.copy(), scale)


def test_crops_drawn_on_the_device_are_aligned_and_cover_every_example():
    pairs = [coded_pair(i) for i in range(3)]
    weights = [np.full((40, 40, 1), i + 1, np.float32) for i in range(3)]
    sampler = CropSampler(pairs, 6, weights=weights)
    assert sampler.draws_on_device
    torch.manual_seed(0)
    x, y, w = sampler.sample_on_device(64)
    assert x.shape == (64, 3, 6, 6) and y.shape == (64, 3, 12, 12) and w.shape == (64, 1, 12, 12)
    assert x.is_contiguous(memory_format=torch.channels_last)
    which, row, col = x[:, 0, 0, 0], x[:, 1, 0, 0], x[:, 2, 0, 0]
    assert set(which.long().tolist()) == {0, 1, 2}  # 64 draws of 3 examples
    assert row.min() >= 0 and col.min() >= 0 and max(row.max(), col.max()) <= 20 - 6
    assert len(set(zip(row.tolist(), col.tolist(), strict=True))) > 32  # positions vary
    steps_ = torch.arange(6, dtype=torch.float32)
    torch.testing.assert_close(x[:, 1], row[:, None, None] + steps_[None, :, None].expand(64, 6, 6))
    torch.testing.assert_close(x[:, 2], col[:, None, None] + steps_[None, None, :].expand(64, 6, 6))
    torch.testing.assert_close(y, x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    torch.testing.assert_close(w[:, 0, 0, 0], which + 1)  # each crop's weights are its example's
    # the host-drawn sampler still reads the same examples (its lists are views of the stacks)
    hx, hy, _ = sampler.sample(8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(hy, hx.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def test_examples_of_different_shapes_are_drawn_on_the_host_only():
    sampler = CropSampler([coded_pair(0), coded_pair(1, h=24)], 6)
    assert not sampler.draws_on_device
    with pytest.raises(ValueError, match="one shape; these are 20x20, 24x20"):
        sampler.sample_on_device(4)


def test_off_cuda_the_step_is_eager_and_the_optimizer_plain():
    network = build(TINY_MODEL, 3, 3, 1)
    optimizer = steps.adam(network, 1e-3, torch.device("cpu"))
    assert optimizer.param_groups[0]["lr"] == 1e-3
    sampler = CropSampler(coded_pair(0, scale=1), 8)
    step = steps.make_step(network, sampler, optimizer, 4, Loss.L2, torch.Generator())
    assert isinstance(step, steps.EagerStep) and not step.graphed
    loss = step(5e-4)
    assert optimizer.param_groups[0]["lr"] == 5e-4 and loss.ndim == 0 and not loss.requires_grad


def test_a_learning_rate_held_in_a_tensor_survives_a_checkpoint(tmp_path):
    """A graphed step's optimizer keeps its rate in a device tensor that the graph reads:
    the checkpoint stores it as a number, and a resume fills the new optimizer's tensor
    in place instead of replacing it (here with a fused Adam on the CPU, which takes one)."""
    network = build(TINY_MODEL, 3, 3, 1)
    params = list(network.parameters())

    def optimizer(lr: float) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=torch.tensor(lr), fused=True)

    saved = optimizer(3e-4)
    for p in params:
        p.grad = torch.ones_like(p)
    saved.step()
    state = checkpoint.State(step=7)
    fit_config = FitConfig(steps=10)
    checkpoint.save(tmp_path, network, saved, torch.Generator(), TINY_MODEL, fit_config, state)
    loaded = optimizer(1.0)
    rate = loaded.param_groups[0]["lr"]
    restored = checkpoint.load(tmp_path, network, loaded, torch.Generator(), TINY_MODEL, fit_config)
    assert restored is not None and restored.step == 7
    assert loaded.param_groups[0]["lr"] is rate and rate.item() == pytest.approx(3e-4)
    torch.testing.assert_close(
        loaded.state[params[0]]["exp_avg"], saved.state[params[0]]["exp_avg"], rtol=0, atol=0
    )


@cuda
def test_a_graphed_step_updates_the_weights_as_an_eager_step_does():
    """The same batches through both kinds of step, from the same weights, at a changing
    learning rate: the losses and weights agree after every step, the warm-up steps',
    the capturing step's and the replays' (which read the new rate and the new batch)."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    first = build(TINY_MODEL, 3, 3, 1).to(device)
    second = build(TINY_MODEL, 3, 3, 1).to(device)
    second.load_state_dict(first.state_dict())
    generator = torch.Generator(device=device).manual_seed(1)
    static = Batch(  # both steps read these tensors; a graph reads them where it captured them
        torch.empty(4, 3, 16, 16, device=device),
        torch.empty(4, 3, 16, 16, device=device),
        torch.empty(4, 1, 16, 16, device=device),
    )
    eager = steps.EagerStep(first, lambda: static, steps.adam(first, 1e-3, device), Loss.L2)
    graphed = steps.GraphStep(second, lambda: static, steps.adam(second, 1e-3, device), Loss.L2)
    for index in range(steps.CUDA_GRAPH_WARMUP + 5):
        static.x.uniform_(generator=generator)
        static.y.uniform_(generator=generator)
        static.w.copy_(torch.rand(4, 1, 16, 16, device=device, generator=generator) > 0.2)
        lr = 1e-3 * (index + 1)
        a, b = eager(lr), graphed(lr)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
        for p, q in zip(first.parameters(), second.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert graphed.graphed


@cuda
def test_a_fit_on_cuda_runs_graphed_steps_and_learns(photo):
    target = load_target("gaussian-blur:sigma=1.5")
    pair = Pair.of(photo, target(photo))
    config = replace(TINY_FIT, steps=300, device="cuda", batch_size=16)
    imitator = fit(pair, replace(TINY_MODEL, skip=Skip.IDENTITY), config, show_progress=False)
    assert imitator.metrics["cuda_graph"] is True
    assert imitator.metrics["val_psnr"] > imitator.metrics["val_floor_psnr"] + 5.0
    losses = [row["loss"] for row in imitator.history if "loss" in row]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])
