"""models/: shapes, closed-form receptive fields vs measured impulse responses, gradients."""

from __future__ import annotations

import pytest
import torch

from onepair.models import (
    PlainCNN,
    PlainConfig,
    Skip,
    Span,
    UNet,
    UNetConfig,
    build,
    config_from_dict,
    config_to_dict,
)
from onepair.presets import preset


@pytest.mark.parametrize(
    ("config", "size"),
    [
        (PlainConfig(receptive_field=31, skip=Skip.NONE), 31),
        (PlainConfig(receptive_field=21, kernel_size=5, skip=Skip.NONE), 21),
        (UNetConfig(depth=1, convs_per_level=2, skip=Skip.NONE), 5),  # two 3x3 convs
        (UNetConfig(depth=2, convs_per_level=2, skip=Skip.NONE), 19),  # worked by hand
        (UNetConfig(depth=3, convs_per_level=2, skip=Skip.NONE), 47),
        (UNetConfig(depth=3, convs_per_level=1, skip=Skip.NONE), 27),
        (UNetConfig(depth=1, skip=Skip.LINEAR, linear_kernel=15), 15),  # the linear path dominates
    ],
)
def test_receptive_field_hand_derived(config, size):
    assert build(config, 3, 3).receptive_field().size == size


def test_span_arithmetic():
    span = Span().conv(3).conv(3).down(2).conv(3)
    assert (span.lo, span.hi, span.jump) == (-4, 5, 2)
    up = span.up(2)
    assert (up.lo, up.hi, up.jump) == (-5, 5, 1)
    assert up.size == 11 and up.margin == 5


def measured_dependencies(network, size, scale, positions):
    """Offsets (input - output//scale) of input pixels that output pixels depend on."""
    network = network.double().eval()
    torch.manual_seed(1)
    with torch.no_grad():  # positive weights and inputs: no ReLU is ever off, nothing hides
        for p in network.parameters():
            p.copy_(p.abs() + 0.01)
    x = torch.rand(1, network.in_channels, size, size, dtype=torch.float64, requires_grad=True)
    y = network(x)
    lo, hi = 10**9, -(10**9)
    for oy, ox in positions:
        (grad,) = torch.autograd.grad(y[0, :, oy, ox].sum(), x, retain_graph=True)
        rows = grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
        cols = grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
        assert rows.numel() and cols.numel()
        lo = min(lo, int(rows.min()) - oy // scale, int(cols.min()) - ox // scale)
        hi = max(hi, int(rows.max()) - oy // scale, int(cols.max()) - ox // scale)
    return lo, hi


@pytest.mark.parametrize(
    ("config", "scale"),
    [
        (UNetConfig(depth=2, width=4, convs_per_level=2, skip=Skip.NONE), 1),
        (UNetConfig(depth=3, width=4, skip=Skip.NONE), 1),
        (UNetConfig(depth=4, width=4, growth=1, skip=Skip.NONE), 1),
        (UNetConfig(depth=3, width=4, kernel_size=5, convs_per_level=1, skip=Skip.NONE), 1),
        (UNetConfig(depth=2, width=4, skip=Skip.NONE), 2),
        (UNetConfig(depth=2, width=4, unshuffle=2, skip=Skip.NONE), 1),
        (UNetConfig(depth=3, width=4, unshuffle=2, skip=Skip.NONE), 2),
        (UNetConfig(depth=1, width=4, unshuffle=3, skip=Skip.NONE), 1),
        (PlainConfig(receptive_field=9, width=4, skip=Skip.NONE), 1),
        (PlainConfig(receptive_field=9, width=4, skip=Skip.NONE), 3),
    ],
)
def test_impulse_response_lies_inside_computed_receptive_field(config, scale):
    network = build(config, 2, 1, scale)
    span = network.receptive_field()
    centre = 64 * scale
    phases = max(4, network.multiple) * scale  # every phase of the down-sampling grid
    positions = [(centre + a, centre + b) for a in range(phases) for b in range(phases)]
    lo, hi = measured_dependencies(network, 128, scale, positions)
    assert span.lo <= lo and hi <= span.hi
    assert (lo, hi) == (span.lo, span.hi)  # and the closed form is tight, not just safe


@pytest.mark.parametrize("scale", [1, 2, 3])
@pytest.mark.parametrize(
    "config",
    [
        UNetConfig(depth=3, width=4),
        UNetConfig(depth=2, width=4, unshuffle=2),
        UNetConfig(depth=4, width=4, growth=1),
        PlainConfig(receptive_field=7, width=4),
    ],
)
def test_any_size_channels_and_scale(config, scale):
    network = build(config, 1, 3, scale)
    assert network(torch.rand(2, 1, 37, 31)).shape == (2, 3, 37 * scale, 31 * scale)


def test_every_trainable_parameter_gets_a_gradient():
    network = UNet(UNetConfig(depth=3, width=4), 3, 3)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    for _ in range(2):  # the zero-initialised head passes gradient on after its first step
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(network(x), y).backward()
        optimizer.step()
    for name, p in network.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert network.num_params() == sum(p.numel() for p in network.parameters())


def test_skip_paths_start_the_network_at_the_skip():
    x = torch.rand(1, 3, 20, 20)
    identity = build(UNetConfig(depth=2, width=4, skip=Skip.IDENTITY), 3, 3)
    torch.testing.assert_close(identity(x), x)
    with pytest.raises(ValueError, match="identity skip needs equal channels and scale 1"):
        build(UNetConfig(skip=Skip.IDENTITY), 1, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PlainConfig(receptive_field=30), "must be 1 \\+ n\\*2"),
        (lambda: UNetConfig(depth=0), "UNetConfig.depth is 0"),
        (lambda: UNetConfig(growth=0), "UNetConfig.growth is 0; expected >= 1"),
        (lambda: UNetConfig(kernel_size=4), "expected odd"),
        (lambda: UNetConfig(skip="sideways"), "'sideways' is not a valid Skip"),
        (lambda: UNetConfig(activation="gelu"), "activation is 'gelu'; expected one of"),
        (lambda: config_from_dict({"architecture": "resnet"}), "expected one of unet, plain"),
        (
            lambda: config_from_dict({"architecture": "unet", "dept": 3}),
            "unknown fields \\['dept'\\]",
        ),
    ],
)
def test_bad_configs_say_what_is_allowed(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_config_dict_round_trip():
    for config in (
        UNetConfig(depth=4, skip=Skip.NONE),
        UNetConfig(activation="relu"),
        UNetConfig(depth=3, growth=1),
        PlainConfig(batchnorm=True),
    ):
        assert config_from_dict(config_to_dict(config)) == config
    assert isinstance(build(PlainConfig(), 3, 3), PlainCNN)


def test_growth_sets_the_channels_of_each_level_and_old_runs_double_them():
    def level_channels(config):
        return [block[0].out_channels for block in build(config, 3, 3).enc]

    assert level_channels(UNetConfig(depth=4, width=8)) == [8, 16, 32, 64]
    assert level_channels(UNetConfig(depth=4, width=8, growth=1)) == [8, 8, 8, 8]
    deep = preset("deep", 3, 3, 1)[0]  # a third level at the default's cost to apply
    assert level_channels(deep) == [8, 8, 8] and build(deep, 3, 3).receptive_field().size == 27
    assert level_channels(UNetConfig(depth=3, width=4, growth=3)) == [4, 12, 36]
    saved = config_to_dict(UNetConfig(depth=3))
    del saved["growth"]  # runs saved before the field doubled the channels per level
    assert config_from_dict(saved).growth == 2
    assert build(preset("first-default", 3, 3, 1)[0], 3, 3).num_params() == 90_387


def test_unets_saved_before_the_activation_field_load_with_plain_relu():
    saved = config_to_dict(UNetConfig())
    del saved["activation"]
    config = config_from_dict(saved)
    assert config.activation == "relu"
    assert any(isinstance(m, torch.nn.ReLU) for m in build(config, 3, 3).modules())
    default = build(UNetConfig(), 3, 3)
    assert not any(isinstance(m, torch.nn.ReLU) for m in default.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in default.modules())


def test_leaky_units_pass_gradient_where_relu_would_be_dead():
    """All pre-activations negative (a dead last level): ReLU passes no gradient back,
    the default's leaky ReLU does, so the fit can recover."""
    for activation, alive in (("relu", False), ("leaky-relu", True)):
        torch.manual_seed(0)
        net = build(UNetConfig(activation=activation, skip=Skip.NONE), 3, 3)
        with torch.no_grad():
            net.dec[0][0].bias.fill_(-100.0)  # the last level's convolution: always negative
            net.head[0].weight.fill_(0.1)
        net(torch.rand(1, 3, 16, 16)).sum().backward()
        assert (net.dec[0][0].weight.grad.abs().sum() > 0) == alive
