"""The ``onnx:`` and ``torch:`` adapters agree with the networks they load, and refuse bad files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onepair.images import from_tensor, to_tensor
from onepair.targets import load_target, onnxfile
from onepair.targets.torchfile import import_spandrel, load_model


def _net(scale: int = 1) -> nn.Module:
    torch.manual_seed(scale)
    layers = [
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 3 * scale * scale, 3, padding=1),
    ]
    return nn.Sequential(*layers, nn.PixelShuffle(scale)).eval()


class _NHWC255(nn.Module):
    """``net`` behind an NHWC, 0..255 interface."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x.permute(0, 3, 1, 2) / 255.0)
        return y.permute(0, 2, 3, 1) * 255.0


def _export(module: nn.Module, path: Path, nhwc: bool = False) -> str:
    example = torch.rand(1, 16, 16, 3) if nhwc else torch.rand(1, 3, 16, 16)
    axes = {0: "n", 1: "h", 2: "w"} if nhwc else {0: "n", 2: "h", 3: "w"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(path), input_names=["x"], output_names=["y"],
            dynamic_axes={"x": axes, "y": axes}, opset_version=17, dynamo=False,
        )  # fmt: skip
    return str(path)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx")
    return {
        "plain": _export(_net(1), folder / "plain.onnx"),
        "nhwc": _export(_NHWC255(_net(1)), folder / "nhwc255.onnx", nhwc=True),
        "x2": _export(_net(2), folder / "x2.onnx"),
    }


def _reference(net: nn.Module, image: np.ndarray, multiple: int = 1) -> np.ndarray:
    """``net`` on the image reflect-padded at bottom/right to ``multiple``, cropped back."""
    h, w, _ = image.shape
    x = to_tensor(image)
    x = nn.functional.pad(x, (0, -w % multiple, 0, -h % multiple), mode="reflect")
    with torch.no_grad():
        y = net(x)
    s = y.shape[-1] // x.shape[-1]
    return from_tensor(y)[: s * h, : s * w]


@pytest.mark.parametrize("multiple", [1, 8])
def test_onnx_matches_torch(onnx_files, rng, multiple):
    image = rng.random((37, 29, 3), dtype=np.float32)
    target = load_target(f"onnx:{onnx_files['plain']}#multiple={multiple},clip=false")
    out = target(image)
    assert out.shape == (37, 29, 3)
    assert np.abs(out - _reference(_net(1), image, multiple)).max() < 1e-5
    clipped = load_target(f"onnx:{onnx_files['plain']}#multiple={multiple}")(image)
    assert clipped.min() >= 0 and clipped.max() <= 1
    np.testing.assert_allclose(clipped, np.clip(out, 0, 1), atol=1e-6)


def test_onnx_nhwc_255(onnx_files, rng):
    image = rng.random((21, 34, 3), dtype=np.float32)
    target = load_target(f"onnx:{onnx_files['nhwc']}#layout=nhwc,max-value=255,clip=false")
    assert np.abs(target(image) - _reference(_net(1), image)).max() < 1e-5


def test_onnx_upscaler_crops_scale_times_input(onnx_files, rng):
    image = rng.random((19, 27, 3), dtype=np.float32)
    out = load_target(f"onnx:{onnx_files['x2']}#multiple=8,clip=false")(image)
    assert out.shape == (38, 54, 3)
    assert np.abs(out - _reference(_net(2), image, 8)).max() < 1e-5


def test_onnx_session_created_once_per_file(onnx_files, tmp_path):
    path = tmp_path / "copy.onnx"
    path.write_bytes(Path(onnx_files["plain"]).read_bytes())
    first = onnxfile._session(str(path), "cpu", 0)
    load_target(f"onnx:{path}#multiple=4,device=cpu")
    assert onnxfile._session(str(path), "cpu", 0) is first
    path.write_bytes(Path(onnx_files["x2"]).read_bytes())  # a new file: a new session
    assert onnxfile._session(str(path), "cpu", 0) is not first


def test_onnx_errors(onnx_files, tmp_path, rng):
    with pytest.raises(ValueError, match="does not exist"):
        load_target(f"onnx:{tmp_path / 'missing.onnx'}")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ValueError, match="not an ONNX model"):
        load_target(f"onnx:{garbage}")
    target = load_target(f"onnx:{onnx_files['plain']}")
    with pytest.raises(ValueError, match=r"expects 3-channel images.*13x11x1"):
        target(rng.random((13, 11, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="layout"):
        load_target(f"onnx:{onnx_files['plain']}#layout=chw")
    with pytest.raises(ValueError, match="unknown parameter 'scale'"):
        load_target(f"onnx:{onnx_files['plain']}#scale=2")


# ----------------------------------------------------------------------------- torch: (spandrel)


def _spandrel_nets() -> dict[str, nn.Module]:
    import_spandrel()
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.DRUNet import DRUNet
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    return {
        "esrgan": ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2),
        "drunet": DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=2),
        "compact": Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=1),
    }


def test_torch_esrgan_pth_upscaler(tmp_path, rng):
    net = _spandrel_nets()["esrgan"].eval()
    path = tmp_path / "esrgan_x2.pth"
    torch.save({"params_ema": net.state_dict()}, path)  # wrapped, as BasicSR saves it
    assert load_model(str(path)).architecture.id == "ESRGAN"
    image = rng.random((23, 17, 3), dtype=np.float32)
    out = load_target(f"torch:{path}")(image)
    assert out.shape == (46, 34, 3)
    with torch.no_grad():
        expected = from_tensor(net(to_tensor(image)).clamp(0, 1))
    assert np.abs(out - expected).max() < 1e-5


def test_torch_drunet_safetensors_pads_to_multiple(tmp_path, rng):
    from safetensors.torch import save_file

    net = _spandrel_nets()["drunet"].eval()
    path = tmp_path / "drunet.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    descriptor = load_model(str(path))
    assert descriptor.architecture.id == "DRUNet"
    assert descriptor.size_requirements.multiple_of == 8
    image = rng.random((37, 29, 3), dtype=np.float32)
    out = load_target(f"torch:{path}")(image)
    x = nn.functional.pad(to_tensor(image), (0, 3, 0, 3), mode="reflect")  # 40 x 32
    noise_map = torch.full((1, 1, 40, 32), 15 / 255)  # spandrel's DRUNet default level
    with torch.no_grad():
        expected = from_tensor(net(torch.cat([x, noise_map], 1)).clamp(0, 1))[:37, :29]
    assert out.shape == (37, 29, 3)
    assert np.abs(out - expected).max() < 1e-5
    with pytest.raises(ValueError, match=r"takes 3-channel images.*37x29x1"):
        load_target(f"torch:{path}")(image[:, :, :1])


def test_torch_tiles_equal_whole_image(tmp_path, rng):
    net = _spandrel_nets()["compact"]  # receptive-field margin 4 < the 6-pixel tile overlap
    path = tmp_path / "compact.pth"
    torch.save(net.state_dict(), path)
    image = rng.random((45, 38, 3), dtype=np.float32)
    whole = load_target(f"torch:{path}")(image)
    tiled = load_target(f"torch:{path}#tile=24")(image)
    assert np.abs(whole - tiled).max() < 1e-5


class _Payload:
    """Unpickling this creates ``marker``: a harmless stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_torch_refuses_pickled_code(tmp_path):
    marker = tmp_path / "code-ran.txt"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3), "extra": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="refused"):
        load_target(f"torch:{path}")
    assert not marker.exists()
    with open(path, "rb") as f:  # the payload is real: an unrestricted load runs it
        torch.load(f, weights_only=False).get("extra").close()
    assert marker.exists()


def test_torch_errors(tmp_path):
    unknown = tmp_path / "unknown.pth"
    torch.save(
        {"encoder.layer1.kernel": torch.zeros(4, 4), "decoder.bias": torch.zeros(4)}, unknown
    )
    with pytest.raises(
        ValueError, match=r"recognises no architecture.*encoder\.layer1\.kernel.*ESRGAN"
    ):
        load_target(f"torch:{unknown}")
    with pytest.raises(ValueError, match="does not exist"):
        load_target(f"torch:{tmp_path / 'missing.pth'}")
    with pytest.raises(ValueError, match="suffix"):
        load_target(f"torch:{tmp_path / 'weights.bin'}")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="cannot read"):
        load_target(f"torch:{garbage}")


def test_torchvision_stand_in_is_gone_after_import():
    import importlib.util
    import sys

    spandrel = import_spandrel()
    assert "ESRGAN" in spandrel.MAIN_REGISTRY and "LaMa" in spandrel.MAIN_REGISTRY
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("a real torchvision is installed")
    assert not any(name.split(".")[0] == "torchvision" for name in sys.modules)
    from spandrel.architectures.LaMa.__arch import LaMa

    with pytest.raises(RuntimeError, match="needs torchvision|is needed by"):
        LaMa.rotate(torch.zeros(1, 1, 4, 4), 0.5)
