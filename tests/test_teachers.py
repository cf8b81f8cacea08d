"""Teachers: tiny trainings per task and loss, the attention net, resume, zoo names."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import numpy as np
import pytest
import torch

from onepair import teachers
from onepair.imitator import Imitator
from onepair.metrics import psnr
from onepair.models import AttentionConfig, AttentionNet, build
from onepair.samples import sample
from onepair.targets.degrade import noise
from onepair.teacher_data import Sampler, task_data, tissue_labels
from onepair.teacher_losses import Criterion
from onepair.teacher_train import train_teacher
from onepair.tiling import apply_network

TINY = dict(seconds=None, width=4, batch_size=2, crop=32, device="cpu", show_progress=False)
HAS_STLPIPS = importlib.util.find_spec("stlpips_pytorch") is not None


def tiny_teacher(task, out, architecture="unet", loss=None, steps=3, **extra):
    images = ("chelsea",) if task == "denoiser" else None
    settings = {**TINY, "images": images, "log_every": 1, **extra}
    return train_teacher(task, out, architecture, loss, steps=steps, **settings)


@pytest.mark.parametrize(
    ("task", "architecture", "channels"),
    [
        ("denoiser", "unet", (3, 3)),
        ("stain", "attention", (1, 3)),
        ("tissue", "plain", (3, 3)),
        ("tissue", "attention", (3, 3)),
        ("microscopy-denoiser", "unet", (1, 1)),
    ],
)
def test_tiny_teacher_writes_a_loadable_run_folder(tmp_path, task, architecture, channels):
    tiny_teacher(task, tmp_path / "t", architecture)
    loaded = Imitator.load(tmp_path / "t", device="cpu")
    assert (loaded.in_channels, loaded.out_channels) == channels
    section = json.loads((tmp_path / "t" / "config.json").read_text())["teacher"]
    assert section["task"] == task and section["architecture"] == architecture
    assert section["loss"] == teachers.default_loss(task) and section["steps"] == 3
    assert section["images"] and math.isfinite(section["training_loss"])
    assert teachers.teacher_info(tmp_path / "t") == section
    assert not (tmp_path / "t" / "checkpoint.safetensors").exists()
    image = np.random.default_rng(0).random((37, 31, channels[0]), dtype=np.float32)
    out = loaded.apply(image)
    assert out.shape == (37, 31, channels[1])
    if task == "tissue":  # probabilities, even unclipped
        raw = loaded.apply(image, clip=False)
        assert raw.min() >= 0 and np.abs(raw.sum(axis=2) - 1).max() < 1e-5
        assert section["classes"] == ["background", "nuclei", "dab"]


def test_denoiser_residual_learning_starts_at_the_identity(tmp_path):
    teacher = tiny_teacher("denoiser", tmp_path / "t", steps=1, lr=1e-12)
    image = sample("coffee")[:40, :44]
    assert np.abs(teacher.apply(image) - image).max() < 1e-4


def test_short_denoiser_training_lowers_loss_and_beats_the_noisy_input(tmp_path):
    # trained on two photographs, measured on a third it never saw
    teacher = train_teacher(
        "denoiser",
        tmp_path / "t",
        steps=80,
        **{**TINY, "width": 8, "batch_size": 8, "crop": 24},
        lr=5e-3,
        images=("astronaut", "coffee"),
    )
    losses = [row["loss"] for row in teacher.history]
    assert np.mean(losses[-2:]) < 0.95 * np.mean(losses[:2])
    clean = sample("chelsea")[100:196, 180:276]
    noisy = noise(clean, np.random.default_rng(0))
    assert psnr(teacher.apply(noisy), clean) > psnr(noisy, clean) + 0.2


@pytest.mark.slow
def test_longer_denoiser_training_gains_several_db(tmp_path):
    teacher = train_teacher(
        "denoiser", tmp_path / "t", steps=600, seconds=None, device="cpu", show_progress=False,
        images=("astronaut", "coffee", "rocket"),
    )  # fmt: skip
    clean = sample("chelsea")[60:252, 120:312]
    noisy = noise(clean, np.random.default_rng(0))
    assert psnr(teacher.apply(noisy), clean) > psnr(noisy, clean) + 3.0


@pytest.mark.parametrize("loss", ["l2", "l1", "perceptual", "adversarial"])
def test_each_loss_trains_with_finite_losses(tmp_path, loss):
    if loss == "perceptual" and not HAS_STLPIPS:
        pytest.skip("stlpips-pytorch not installed (pip install --no-deps stlpips-pytorch)")
    teacher = tiny_teacher("stain", tmp_path / "t", loss=loss)
    assert len(teacher.history) == 3 and all(math.isfinite(r["loss"]) for r in teacher.history)
    assert teachers.teacher_info(tmp_path / "t")["loss"] == loss


@pytest.mark.skipif(not HAS_STLPIPS, reason="stlpips-pytorch not installed")
def test_perceptual_loss_is_l1_plus_weighted_st_lpips():
    criterion = Criterion("perceptual", 6)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert criterion(x, y, y).item() == pytest.approx(0.0, abs=1e-6)
    l1 = torch.nn.functional.l1_loss(x, y).item()
    assert criterion(x, x, y).item() > l1 + 1e-3
    stand_ins = {"IPython", "torchsummary", "torchvision"}
    assert not {m for m in stand_ins if m in sys.modules and sys.modules[m].__spec__ is None}


def test_adversarial_loss_adds_a_positive_gan_term_and_trains_its_discriminator():
    torch.manual_seed(0)
    criterion = Criterion("adversarial", 4)
    x, fake, real = torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert criterion(x, fake, real).item() > torch.nn.functional.l1_loss(fake, real).item()
    before = [p.detach().clone() for p in criterion.discriminator.parameters()]
    criterion.train_discriminator(x, fake, real)
    after = list(criterion.discriminator.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_invalid_choices_name_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="expected one of denoiser, stain, tissue"):
        train_teacher("deblur", tmp_path / "a", steps=1)
    with pytest.raises(ValueError, match="expected one of unet, plain, attention"):
        train_teacher("stain", tmp_path / "b", "resnet", steps=1)
    with pytest.raises(ValueError, match="classifier trains with cross-entropy"):
        train_teacher("tissue", tmp_path / "c", loss="l2", steps=1)
    with pytest.raises(ValueError, match="uses astronaut"):
        train_teacher("denoiser", tmp_path / "d", steps=1, images=("camera",))
    with pytest.raises(ValueError, match="needs a budget"):
        train_teacher("stain", tmp_path / "e", seconds=None, steps=None)


def test_tissue_labels_find_all_three_classes_on_the_ihc_image():
    labels = tissue_labels(sample("ihc"))
    fractions = np.bincount(labels.ravel(), minlength=3) / labels.size
    assert fractions == pytest.approx([0.36, 0.15, 0.49], abs=0.03)


def test_sampler_crops_are_aligned_flips_of_the_pairs():
    data = task_data("stain", None)
    crops = Sampler({**data, "noise": 0.0}, 16, "cpu")
    x, y = crops.batch(4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 16, 16) and y.shape == (4, 3, 16, 16)
    # same transform on both: the grey input is the min-max-scaled hematoxylin of the target
    from onepair.teachers import stain_input

    for i in range(4):
        target = y[i].permute(1, 2, 0).numpy()
        h = stain_input(target)[..., 0]
        assert np.corrcoef(h.ravel(), x[i, 0].numpy().ravel())[0, 1] > 0.99


# ---------------------------------------------------------------- the attention net

SMALL = AttentionConfig(width=4, blocks=2, heads=2, window=4, skip="none")


def test_attention_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = AttentionNet(SMALL, 3, 3)
    net(torch.rand(2, 3, 24, 20)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("size", "cin", "cout", "scale"), [((37, 31), 1, 3, 1), ((9, 7), 3, 3, 2)])
def test_attention_output_shape_for_odd_sizes(size, cin, cout, scale):
    net = build(SMALL, cin, cout, scale)
    assert net(torch.rand(1, cin, *size)).shape == (1, cout, scale * size[0], scale * size[1])


def test_attention_tiled_equals_whole_and_receptive_field_holds_the_impulse_response():
    torch.manual_seed(0)
    net = AttentionNet(SMALL, 1, 1).eval()
    image = np.random.default_rng(0).random((75, 61, 1), dtype=np.float32)
    whole = apply_network(net, image, tile=None)
    assert np.abs(apply_network(net, image, tile=24) - whole).max() < 1e-5
    span = net.receptive_field()
    bumped = image.copy()
    bumped[37, 30] += 1.0
    changed = np.argwhere(np.abs(apply_network(net, bumped, tile=None) - whole)[..., 0] > 0)
    assert len(changed) > 0
    assert (37 - changed[:, 0]).min() >= span.lo and (37 - changed[:, 0]).max() <= span.hi
    assert (30 - changed[:, 1]).min() >= span.lo and (30 - changed[:, 1]).max() <= span.hi


def test_attention_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = AttentionNet(AttentionConfig(width=4, blocks=2, window=4, linear_kernel=3), 3, 3)
    for p in net.head.parameters():  # a non-zero head, so the body matters
        torch.nn.init.normal_(p, std=0.1)
    Imitator(net).save(tmp_path / "run")
    loaded = Imitator.load(tmp_path / "run", device="cpu")
    assert loaded.model == net.config
    image = np.random.default_rng(1).random((29, 35, 3), dtype=np.float32)
    assert np.array_equal(loaded.apply(image, clip=False), Imitator(net).apply(image, clip=False))


# ---------------------------------------------------------------- resume and zoo names


def test_interrupted_training_resumes_at_the_saved_step(tmp_path, monkeypatch):
    settings = dict(loss="adversarial", steps=8, checkpoint_every=2)
    reference = tiny_teacher("stain", tmp_path / "ref", **settings)
    calls = {"n": 0}
    batch = Sampler.batch

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return batch(self, *args)

    monkeypatch.setattr(Sampler, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny_teacher("stain", tmp_path / "run", **settings)
    monkeypatch.setattr(Sampler, "batch", batch)
    with pytest.raises(FileExistsError, match="resume"):
        tiny_teacher("stain", tmp_path / "run", **settings)
    with pytest.raises(ValueError, match="crop"):
        tiny_teacher("stain", tmp_path / "run", resume=True, **{**settings, "crop": 16})
    resumed = tiny_teacher("stain", tmp_path / "run", resume=True, **settings)
    assert [row["step"] for row in resumed.history] == list(range(1, 9))
    assert resumed.metrics["steps"] == 8
    for key, value in reference.network.state_dict().items():
        assert torch.allclose(resumed.network.state_dict()[key], value, atol=1e-6), key


def test_zoo_name_without_a_teacher_says_the_command_and_with_one_applies_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEPAIR_HOME", str(tmp_path))
    function = teachers.MODELS["teacher-stain"][0]
    grey = np.random.default_rng(0).random((20, 24, 1), dtype=np.float32)
    folder = tmp_path / "teachers" / "stain-attention-l1"
    command = f"onepair zoo train-teacher stain -o {folder} --architecture attention --loss l1"
    with pytest.raises(ValueError, match="not trained") as error:
        function(grey, architecture="attention", loss="l1")
    assert command in str(error.value)
    trained = tiny_teacher("stain", folder, "attention", "l1")
    assert np.array_equal(function(grey, architecture="attention", loss="l1"), trained(grey))


def test_zoo_names_are_listed_by_load_target(tmp_path, monkeypatch):
    from onepair.targets import load_target

    monkeypatch.setenv("ONEPAIR_HOME", str(tmp_path))
    target = load_target("teacher-tissue:architecture=plain")
    with pytest.raises(ValueError, match="train-teacher tissue .* --loss cross-entropy"):
        target(np.zeros((8, 8, 3), np.float32))


def test_a_teacher_of_a_step_budget_is_the_same_on_a_slow_machine(tmp_path, monkeypatch):
    """The default budget is :data:`teachers.STEPS` steps, no wall time: the schedule and
    the stopping point depend on the step alone, so a slower machine trains the same
    teacher (a wall-time budget gave two machines teachers of very different difficulty)."""
    import inspect

    from onepair import teacher_train

    defaults = inspect.signature(train_teacher).parameters
    assert defaults["steps"].default == teachers.STEPS and defaults["seconds"].default is None
    fast = tiny_teacher("stain", tmp_path / "fast", steps=6)
    clock = iter(range(0, 10**6, 50))  # 50 s between any two readings of the clock
    monkeypatch.setattr(teacher_train.time, "perf_counter", lambda: float(next(clock)))
    slow = tiny_teacher("stain", tmp_path / "slow", steps=6)
    assert slow.metrics["steps"] == fast.metrics["steps"] == 6
    assert slow.metrics["seconds"] > 100 * fast.metrics["seconds"]
    for key, value in fast.network.state_dict().items():
        assert torch.equal(slow.network.state_dict()[key], value), key
