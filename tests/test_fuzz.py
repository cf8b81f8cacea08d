"""Untrusted inputs: fuzzed image files and run folders, and the config.json schema.

The seeded fuzz cases come from ``fuzz/fuzz.py`` (whose long run is ``make fuzz``);
the config.json property runs under hypothesis; the rest pin the exact messages
of the schema and the bugs the fuzzing found.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import struct
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onepair.codec import decode_image
from onepair.images import ImageError, load_image
from onepair.imitator import Imitator
from onepair.models import (
    ARCHITECTURES,
    AttentionConfig,
    FilterConfig,
    PlainConfig,
    SoftmaxConfig,
    UNetConfig,
    build,
    config_from_dict,
    config_to_dict,
)
from onepair.runschema import MODEL_FIELDS, RUN_FIELDS, check_model

ROOT = Path(__file__).resolve().parents[1]


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("onepair_fuzz", ROOT / "fuzz" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz_module()


# ----------------------------------------------------------------------------- seeded fuzz


@pytest.fixture(scope="module")
def memory_cap():
    """At most 2 GiB more address space while fuzzing: a bomb shows as MemoryError."""
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    fuzz.limit_memory(2.0)
    yield
    resource.setrlimit(resource.RLIMIT_AS, before)


def test_image_loaders_load_or_refuse_every_fuzzed_file(memory_cap):
    summary = fuzz.run(500, seed=0, seconds=5.0, loaders=fuzz.IMAGE_LOADERS)
    assert summary.failures == [], summary.text()
    for loader in fuzz.IMAGE_LOADERS:  # the cases reach both outcomes of every loader
        assert summary.cases[loader] == 100
        assert summary.outcomes[loader, "loaded"] > 10, summary.text()
        assert summary.outcomes[loader, "refused"] > 10, summary.text()


def test_run_folder_loader_loads_or_refuses_every_fuzzed_folder(memory_cap):
    summary = fuzz.run(150, seed=0, seconds=5.0, loaders=("run",))
    assert summary.failures == [], summary.text()
    assert summary.outcomes["run", "loaded"] >= 10, summary.text()
    assert summary.errors["run", "ValueError"] >= 100, summary.text()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(
    name=st.sampled_from(sorted(MODEL_FIELDS)),
    changes=st.dictionaries(st.sampled_from(["depth", "width", "skip", "backbone", "x"]), JSON),
)
def test_config_from_dict_takes_any_json_and_raises_only_value_error(name, changes):
    data = {"architecture": name, **changes}
    try:
        config = config_from_dict(data)
    except ValueError as error:
        assert str(error).startswith("model")
        return
    check_model(config_to_dict(config))  # what it accepted passes its own schema
    assert config_from_dict(config_to_dict(config)) == config
    with torch.device("meta"):  # and builds (shapes only) without any other exception
        build(config, 1, 1, 1)


# ----------------------------------------------------------------------------- run folders


RECIPES = {
    "unet": (UNetConfig(depth=2, width=4, linear_kernel=3), 1, 3, 1),
    "plain": (PlainConfig(receptive_field=5, width=4, batchnorm=True, skip="identity"), 3, 3, 1),
    "attention": (AttentionConfig(width=4, blocks=2, window=4, linear_kernel=3), 1, 1, 2),
    "softmax": (SoftmaxConfig(UNetConfig(depth=2, width=4, skip="none")), 3, 4, 1),
    "filter": (FilterConfig(linear_kernel=3, linear_bins=2), 3, 3, 1),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One saved run folder per architecture, with random (not default) weights."""
    torch.manual_seed(0)
    folders = {}
    for name, (config, cin, cout, scale) in RECIPES.items():
        network = build(config, cin, cout, scale)
        with torch.no_grad():
            for tensor in network.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(torch.randn_like(tensor) * 0.1)
        history = [{"step": 5.0, "seconds": 0.5, "loss": 0.25, "lr": 1e-3, "val_psnr": 30.0}]
        imitator = Imitator(network, config, {"seed": 3}, {"val_psnr": math.inf}, history)
        folders[name] = imitator.save(tmp_path_factory.mktemp("runs") / name)
    return folders


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_saved_run_folder_loads_unchanged(saved, name):
    original = saved[name]
    loaded = Imitator.load(original, device="cpu")
    config, cin, cout, scale = RECIPES[name]
    assert loaded.model == config
    assert (loaded.in_channels, loaded.out_channels, loaded.scale) == (cin, cout, scale)
    assert loaded.fit == {"seed": 3} and loaded.metrics == {"val_psnr": math.inf}
    assert loaded.history == [
        {"step": 5.0, "seconds": 0.5, "loss": 0.25, "lr": 1e-3, "val_psnr": 30.0}
    ]
    expected = build(config, cin, cout, scale)
    from safetensors.torch import load_file

    expected.load_state_dict(load_file(str(original / "weights.safetensors")))
    for key, tensor in expected.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], tensor), key
    image = np.random.default_rng(1).random((13, 11, cin)).astype(np.float32)
    again = Imitator(expected.eval())
    np.testing.assert_array_equal(loaded.apply(image, tile=None), again.apply(image, tile=None))
    resaved = loaded.save(original.parent / f"{name}-again")
    assert (resaved / "config.json").read_text() == (original / "config.json").read_text()


def _with_config(saved: dict[str, Path], tmp: Path, name: str, edit) -> Path:
    """A copy of run folder ``name`` whose config.json dict is changed by ``edit``."""
    config = json.loads((saved[name] / "config.json").read_text())
    config = edit(config) or config
    tmp.mkdir(exist_ok=True)
    (tmp / "weights.safetensors").write_bytes((saved[name] / "weights.safetensors").read_bytes())
    (tmp / "config.json").write_text(json.dumps(config))
    return tmp


def _set(path: str, value):
    def edit(config):
        keys = path.split(".")
        target = config
        for key in keys[:-1]:
            target = target[key]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return edit


DELETE = object()
SKIPS = "one of none, identity, linear"
# (run folder, field path, value written there, the message after "config.json: ")
FIELD_CASES = [
    ("unet", "model.depth", 0, "model.depth is 0; expected an integer in 1..8"),
    ("unet", "model.depth", 9, "model.depth is 9; expected an integer in 1..8"),
    ("unet", "model.unshuffle", 0, "model.unshuffle is 0; expected an integer in 1..8"),
    (
        "unet",
        "model.unshuffle",
        2.5,
        "model.unshuffle is 2.5 (number); expected an integer in 1..8",
    ),
    ("unet", "model.width", "32", 'model.width is "32" (string); expected an integer in 1..1024'),
    ("unet", "model.width", 1025, "model.width is 1025; expected an integer in 1..1024"),
    ("unet", "model.kernel_size", 4, "model.kernel_size is 4; expected an odd integer in 1..31"),
    ("unet", "model.kernel_size", 33, "model.kernel_size is 33; expected an odd integer in 1..31"),
    (
        "unet",
        "model.convs_per_level",
        3.0,
        "model.convs_per_level is 3.0 (number); expected an integer in 1..8",
    ),
    ("unet", "model.convs_per_level", 9, "model.convs_per_level is 9; expected an integer in 1..8"),
    ("unet", "model.growth", 0, "model.growth is 0; expected an integer in 1..4"),
    ("unet", "model.linear_bins", 0, "model.linear_bins is 0; expected an integer in 1..32"),
    ("filter", "model.linear_bins", 33, "model.linear_bins is 33; expected an integer in 1..32"),
    (
        "filter",
        "model.stage2_kernel",
        64,
        "model.stage2_kernel is 64; expected an integer in 0..63",
    ),
    (
        "filter",
        "model.stage2_kernel",
        4,
        "model: FilterConfig.stage2_kernel is 4; expected 0 (no second stage) or odd >= 1",
    ),
    ("filter", "model.stage2_bins", 0, "model.stage2_bins is 0; expected an integer in 1..32"),
    (
        "filter",
        "model.refine_layers",
        33,
        "model.refine_layers is 33; expected an integer in 0..32",
    ),
    ("filter", "model.refine_width", 0, "model.refine_width is 0; expected an integer in 1..1024"),
    (
        "filter",
        "model.refined_stage2",
        "no",
        'model.refined_stage2 is "no" (string); expected true or false',
    ),
    ("filter", "model.refined_bins", 33, "model.refined_bins is 33; expected an integer in 0..32"),
    ("unet", "model.growth", 5, "model.growth is 5; expected an integer in 1..4"),
    ("unet", "model.skip", "residual", f'model.skip is "residual"; expected {SKIPS}'),
    (
        "unet",
        "model.activation",
        "gelu",
        'model.activation is "gelu"; expected one of leaky-relu, relu',
    ),
    (
        "unet",
        "model.linear_kernel",
        True,
        "model.linear_kernel is true (boolean); expected an odd integer in 1..63",
    ),
    (
        "unet",
        "model.linear_kernel",
        65,
        "model.linear_kernel is 65; expected an odd integer in 1..63",
    ),
    (
        "plain",
        "model.receptive_field",
        1025,
        "model.receptive_field is 1025; expected an odd integer in 3..1023",
    ),
    (
        "plain",
        "model.receptive_field",
        6,
        "model.receptive_field is 6; expected an odd integer in 3..1023",
    ),
    ("plain", "model.width", -1, "model.width is -1; expected an integer in 1..1024"),
    ("plain", "model.kernel_size", 1, "model.kernel_size is 1; expected an odd integer in 3..31"),
    ("plain", "model.batchnorm", 1, "model.batchnorm is 1 (integer); expected true or false"),
    ("plain", "model.skip", None, f"model.skip is null (null); expected {SKIPS}"),
    (
        "plain",
        "model.linear_kernel",
        2,
        "model.linear_kernel is 2; expected an odd integer in 1..63",
    ),
    ("attention", "model.width", 0, "model.width is 0; expected an integer in 1..1024"),
    ("attention", "model.blocks", 33, "model.blocks is 33; expected an integer in 1..32"),
    ("attention", "model.heads", 65, "model.heads is 65; expected an integer in 1..64"),
    ("attention", "model.window", 1, "model.window is 1; expected an integer in 2..64"),
    (
        "attention",
        "model.expansion",
        float("nan"),
        "model.expansion is NaN; expected a number in (0, 16]",
    ),
    ("attention", "model.expansion", 0, "model.expansion is 0; expected a number in (0, 16]"),
    (
        "attention",
        "model.expansion",
        "2",
        'model.expansion is "2" (string); expected a number in (0, 16]',
    ),
    ("attention", "model.skip", "linear ", f'model.skip is "linear "; expected {SKIPS}'),
    (
        "attention",
        "model.linear_kernel",
        10**30,
        "model.linear_kernel is 1000000000000000000000000000000; expected an odd integer in 1..63",
    ),
    (
        "softmax",
        "model.backbone",
        3,
        "model.backbone is 3 (integer); "
        "expected an object with an architecture of unet, plain, attention",
    ),
    (
        "softmax",
        "model.backbone.architecture",
        "softmax",
        'model.backbone.architecture is "softmax"; expected one of unet, plain, attention',
    ),
    (
        "softmax",
        "model.backbone.width",
        0,
        "model.backbone.width is 0; expected an integer in 1..1024",
    ),
    (
        "unet",
        "model.architecture",
        "vit",
        'model.architecture is "vit"; expected one of unet, plain, attention, softmax, filter',
    ),
    (
        "unet",
        "model.architecture",
        DELETE,
        "model.architecture is missing; expected one of unet, plain, attention, softmax, filter",
    ),
    (
        "unet",
        "model.dept",
        3,
        "model has unknown fields ['dept'] for architecture 'unet'; "
        "valid fields: depth, width, kernel_size, convs_per_level, growth, unshuffle, skip, "
        "linear_kernel, linear_bins, activation",
    ),
    (
        "unet",
        "model",
        [],
        "model is [] (array); "
        "expected an object with an architecture of unet, plain, attention, softmax, filter",
    ),
    (
        "unet",
        "onepair_version",
        3,
        "onepair_version is 3 (integer); expected a string of at most 100 characters",
    ),
    (
        "unet",
        "onepair_version",
        "9" * 101,
        "onepair_version is " + '"' + "9" * 56 + "...; expected a string of at most 100 characters",
    ),
    ("unet", "in_channels", 0, "in_channels is 0; expected an integer in 1..64"),
    ("unet", "in_channels", "3", 'in_channels is "3" (string); expected an integer in 1..64'),
    ("unet", "out_channels", 65, "out_channels is 65; expected an integer in 1..64"),
    ("unet", "out_channels", DELETE, "out_channels is missing; expected an integer in 1..64"),
    ("unet", "scale", 9, "scale is 9; expected an integer in 1..8"),
    ("unet", "scale", 2.5, "scale is 2.5 (number); expected an integer in 1..8"),
    ("unet", "fit", [], "fit is [] (array); expected an object"),
    ("unet", "teacher", "yes", 'teacher is "yes" (string); expected an object'),
    (
        "unet",
        "extra",
        1,
        "unknown fields ['extra']; "
        "valid fields: onepair_version, model, in_channels, out_channels, scale, fit, teacher",
    ),
]


@pytest.mark.parametrize(("name", "path", "value", "message"), FIELD_CASES)
def test_each_bad_field_is_named_with_its_value_and_range(
    saved, tmp_path, name, path, value, message
):
    folder = _with_config(saved, tmp_path / "run", name, _set(path, value))
    with pytest.raises(ValueError) as info:
        Imitator.load(folder, device="cpu")
    assert str(info.value) == f"{folder / 'config.json'}: {message}"


def test_every_schema_field_has_a_message_test():
    tested = {path.split(".")[-1] for _, path, _, _ in FIELD_CASES}
    for name, table in MODEL_FIELDS.items():
        config_type = ARCHITECTURES[name][0]
        assert set(table) == {f.name for f in fields(config_type)}, name
        assert set(table) <= tested, name
    assert set(RUN_FIELDS) <= tested
    assert set(RUN_FIELDS) == set(
        Imitator(build(UNetConfig(depth=1, width=1), 1, 1)).config_dict()
    ) | {"teacher"}


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (
            "plain",
            _set("model.kernel_size", 7),
            "model: PlainConfig.receptive_field is 5; with kernel_size 7 it must be",
        ),
        (
            "attention",
            _set("model.heads", 3),
            "model: AttentionConfig: 2*width = 8 channels cannot be split into 3 heads",
        ),
        (
            "softmax",
            _set("model.backbone.skip", "linear"),
            "model: SoftmaxConfig backbone has skip='linear'",
        ),
        (
            "plain",
            _set("out_channels", 1),
            "identity skip needs equal channels and scale 1; got 3 -> 1 channels",
        ),
        (
            "unet",
            lambda c: {**c, "model": {"architecture": "unet", "depth": 8, "width": 1024}},
            "its network would hold 400,839,941,801 values (1493.2 GiB as float32); "
            "expected at most 67,108,864",
        ),
        (  # 511 convolutions 1024 -> 1024 with batch norm, counted by hand
            "plain",
            lambda c: c["model"].update(receptive_field=1023, width=1024),
            "its network would hold 4,815,085,057 values (17.9 GiB as float32); "
            "expected at most 67,108,864",
        ),
        ("unet", lambda c: [c], "the top level is [{"),
    ],
)
def test_constraints_between_fields_and_network_size(saved, tmp_path, name, edit, message):
    folder = _with_config(saved, tmp_path / "run", name, edit)
    with pytest.raises(ValueError) as info:
        Imitator.load(folder, device="cpu")
    assert str(info.value).startswith(f"{folder / 'config.json'}: {message}")


def _header(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    (length,) = struct.unpack_from("<Q", data)
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _write_weights(folder: Path, header: dict, body: bytes) -> None:
    text = json.dumps(header).encode()
    (folder / "weights.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + body)


def _edit_entry(key: str, **changes):
    def edit(header):
        header[key] = {**header[key], **changes}

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _edit_entry("head.0.weight", shape=[3, 4, 1, 2]),
            "tensor 'head.0.weight' is F32 [3, 4, 1, 2]; "
            "config.json's network needs F32 [3, 4, 1, 1]",
        ),
        (
            _edit_entry("head.0.bias", dtype="F16"),
            "tensor 'head.0.bias' is F16 [3]; config.json's network needs F32 [3]",
        ),
        (
            lambda h: h.pop("linear.bias"),
            "tensor 'linear.bias' is missing; config.json's network needs F32 [3]",
        ),
        (
            lambda h: h.update(spare=h["head.0.bias"]),
            "tensor 'spare' is not part of config.json's network",
        ),
        (
            lambda h: h.update({"head.0.bias": [1, 2]}),
            "tensor 'head.0.bias' has header entry [1, 2]; expected an object",
        ),
    ],
)
def test_weights_must_match_the_rebuilt_network(saved, tmp_path, edit, message):
    folder = _with_config(saved, tmp_path / "run", "unet", lambda c: None)
    header, body = _header(folder / "weights.safetensors")
    edit(header)
    _write_weights(folder, header, body)
    with pytest.raises(ValueError) as info:
        Imitator.load(folder, device="cpu")
    assert str(info.value) == f"{folder / 'weights.safetensors'}: {message}"


def test_oversized_or_forged_weights_are_refused_before_reading(saved, tmp_path, monkeypatch):
    import onepair.imitator

    def no_reading(*args, **kwargs):
        raise AssertionError("weights were read")

    monkeypatch.setattr(onepair.imitator, "load_file", no_reading)
    folder = _with_config(saved, tmp_path / "run", "unet", lambda c: None)
    data = (folder / "weights.safetensors").read_bytes()
    (folder / "weights.safetensors").write_bytes(data + b"\0" * 2**20)  # 1 MiB appended
    with pytest.raises(
        ValueError, match=r"is 1,054,524 bytes; this config's network needs 4,916 bytes of weights"
    ):
        Imitator.load(folder, device="cpu")
    (folder / "weights.safetensors").write_bytes(struct.pack("<Q", 2**63) + data[8:])
    with pytest.raises(
        ValueError, match="not a safetensors file: header length 9223372036854775808"
    ):
        Imitator.load(folder, device="cpu")


def test_non_finite_weights_and_bad_side_files_are_refused(saved, tmp_path):
    folder = _with_config(saved, tmp_path / "run", "unet", lambda c: None)
    header, body = _header(folder / "weights.safetensors")
    start = header["head.0.bias"]["data_offsets"][0]
    _write_weights(folder, header, body[:start] + struct.pack("<f", math.nan) + body[start + 4 :])
    with pytest.raises(ValueError, match="tensor 'head.0.bias' holds NaN or infinite values"):
        Imitator.load(folder, device="cpu")
    folder = _with_config(saved, tmp_path / "run2", "unet", lambda c: None)
    (folder / "history.csv").write_text("step,loss\n1,0.5,extra\n")
    with pytest.raises(ValueError, match="history.csv is not a history of numbers: line 2 has not"):
        Imitator.load(folder, device="cpu")
    (folder / "history.csv").write_text("step,loss\n1,x\n")
    with pytest.raises(ValueError, match="history.csv is not a history of numbers: could not"):
        Imitator.load(folder, device="cpu")
    (folder / "history.csv").unlink()
    (folder / "metrics.json").write_text("[1]")
    with pytest.raises(ValueError, match="metrics.json holds list; expected an object"):
        Imitator.load(folder, device="cpu")
    (folder / "config.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match="config.json is not valid JSON: nested too deeply"):
        Imitator.load(folder, device="cpu")


# ----------------------------------------------------------------------------- images


def _tiff(data: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, **kwargs)
    return buffer.getvalue()


def test_multi_page_tiff_is_refused_not_read_as_a_wrong_image(tmp_path):
    pages = np.zeros((3, 20, 30), np.uint8)  # three gray pages, not one 3-channel image
    with pytest.raises(
        ImageError, match=r"shape \(3, 20, 30\) \(axes QYX\); expected one 2-D image"
    ):
        decode_image(_tiff(pages, photometric="minisblack"), "stack")
    one = decode_image(_tiff(pages[:1], photometric="minisblack"))[0]
    assert one.shape == (20, 30, 1)  # a single page with a length-1 page axis loads


def test_tiff_strips_past_the_end_of_file_are_refused():
    data = bytearray(_tiff(np.ones((8, 8), np.uint8)))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tag = tif.pages[0].tags["StripByteCounts"]
    struct.pack_into("<I", data, tag.offset + 8, 3_000_000_000)  # forged: 3 GB in one strip
    with pytest.raises(ImageError, match="a strip or tile of 3,000,000,000 bytes at byte"):
        decode_image(bytes(data), "forged")


def test_tiff_strips_tifffile_skipped_are_refused_not_zero_filled():
    data = bytearray(_tiff(np.full((16, 16), 7, np.uint8), rowsperstrip=4))  # four strips
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tag = tif.pages[0].tags["StripByteCounts"]
    struct.pack_into("<I", data, tag.offset + 4, 2)  # two counts for four strips
    # tifffile logs this and fills the rows of the strips it skipped with zeros
    with pytest.raises(
        ImageError, match="strips: cannot read as TIFF: .*expected 4 segments, got 2"
    ):
        decode_image(bytes(data), "strips")


def _jpeg_declaring(height: int, width: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_tiny_jpeg_declaring_a_big_image_is_refused_before_decoding():
    data = _jpeg_declaring(12000, 12000)  # was decoded: 1.7 GB of float32 garbage in 11 s
    message = f"declares 144,000,000 pixels, but its {len(data)} bytes of JPEG can hold at most 512"
    with pytest.raises(ImageError, match=message):
        decode_image(data, "reply")


def test_a_gif_named_jpg_is_refused_not_decoded(tmp_path):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, format="GIF")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<HH", data, 6, 9000, 9000)  # was decoded: 9000x9000x3, 1 GB of float32
    (tmp_path / "bomb.jpg").write_bytes(data)
    with pytest.raises(ImageError, match="bomb.jpg: cannot read as JPG: cannot identify image"):
        load_image(tmp_path / "bomb.jpg")


def test_tiny_png_declaring_a_big_image_is_refused_before_decoding(tmp_path):
    import zlib

    data = bytearray(fuzz.valid_png(np.random.default_rng(3))[0])
    struct.pack_into(">II", data, 16, 9000, 9000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    (tmp_path / "bomb.png").write_bytes(data)
    with pytest.raises(
        ImageError, match=r"declares [\d,]+ bytes of pixels, but its \d+ bytes of PNG can hold"
    ):
        load_image(tmp_path / "bomb.png")


def test_png_chunk_longer_than_the_file_is_refused_before_reading(tmp_path):
    from onepair.codec import encode_image

    data = bytearray(encode_image(np.zeros((12, 12, 1)), "png", 8))
    struct.pack_into(">I", data, 33, 2_130_706_527)  # the IDAT's length: Pillow read() it whole
    (tmp_path / "long.png").write_bytes(data)
    message = f"'IDAT' chunk of 2,130,706,527 bytes at byte 33 ends past the end of the {len(data)}"
    with pytest.raises(ImageError, match=message):
        load_image(tmp_path / "long.png")
    with pytest.raises(ImageError, match=message):
        decode_image(bytes(data), "reply")


def test_npy_headers_are_checked_before_loading(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[None]], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match=r"holds Python objects \(dtype object\)"):
        load_image(tmp_path / "obj.npy")
    np.save(tmp_path / "cut.npy", np.zeros((100, 100), np.float32))
    data = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-20000])
    with pytest.raises(
        ImageError,
        match="declares 40,000 bytes of pixels, but its 20,000 bytes of NPY can hold at most 1 per",
    ):
        load_image(tmp_path / "cut.npy")
    with open(tmp_path / "huge.npy", "wb") as f:  # 2**62 x 2**62 overflows an int64 product
        header = {"descr": "<f4", "fortran_order": False, "shape": (2**62, 2**62, 4)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    with pytest.raises(ImageError, match="declares a 4611686018427387904x4611686018427387904"):
        load_image(tmp_path / "huge.npy")
    with open(tmp_path / "negative.npy", "wb") as f:  # numpy multiplies these to 8589934591
        header = {"descr": "<U2", "fortran_order": False, "shape": (-1, 2**32 - 1, 1, 2**32 - 1)}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 16)
    with pytest.raises(ImageError, match=r"declares shape \(-1, 4294967295, 1, 4294967295\)"):
        load_image(tmp_path / "negative.npy")
