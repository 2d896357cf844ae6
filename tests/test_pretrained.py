"""torchvision's ImageNet MobileNetV2 without PyTorch: the checkpoint loader, TVM against
onnxruntime and the NumPy reference on real photos, and the classify command."""

import numpy as np
import pytest
from conftest import run_module
from test_models import onnxruntime_run

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate import imagenet
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, compare
from tvm_mobilenet.frontend.importer import ModelSource, import_model, onnx_model
from tvm_mobilenet.models import pretrained
from tvm_mobilenet.reference import interpreter as reference
from tvm_mobilenet.runtime.rpc import EMULATED_LABEL
from tvm_mobilenet.runtime.runner import load, load_local
from tvm_mobilenet.target.presets import load_target

SOURCE = ModelSource(pretrained.NAME)
PHOTOS = ("skimage:chelsea", "skimage:coffee")
#: ImageNet's domestic cat classes (281-285).
CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def top5(logits: np.ndarray) -> list[int]:
    return [index for index, _ in imagenet.top_classes(logits, 5)]


def short_name(index: int) -> str:
    return imagenet.class_names()[index].split(",")[0]


@pytest.fixture(scope="module")
def outputs(built_library) -> dict[str, dict[str, np.ndarray]]:
    """Logits of each photo from TVM, onnxruntime and the NumPy reference."""
    path, _ = built_library(SOURCE)
    library, model = load_local(path), onnx_model(SOURCE)
    result = {}
    for photo in PHOTOS:
        x = imagenet.preprocess(imagenet.load_image(photo))
        result[photo] = {"tvm": library.run(x), "onnxruntime": onnxruntime_run(model, x),
                         "reference": reference.run(model, {"input": x})[0]}
    return result


def test_loader_rejects_other_files(tmp_path):
    fake = tmp_path / pretrained.CHECKPOINT_FILE
    fake.write_bytes(b"not torchvision's checkpoint")
    with pytest.raises(UserError, match="is not torchvision's mobilenet_v2-b0353104.pth: its "
                                        "sha256 is"):
        pretrained.read_checkpoint(fake)
    with pytest.raises(UserError, match="does not exist"):
        pretrained.read_checkpoint(tmp_path / "missing.pth")


def test_pretrained_flags_must_fit_the_checkpoint():
    with pytest.raises(UserError, match="alpha 1.0, resolution 224 and expansion 6"):
        onnx_model(ModelSource(pretrained.NAME, alpha=0.5))


@pytest.mark.parametrize("photo", PHOTOS)
def test_tvm_matches_onnxruntime_and_reference(outputs, photo):
    logits = outputs[photo]
    expected = logits["reference"]
    for runtime in ("tvm", "onnxruntime"):
        comparison = compare(logits[runtime], expected)
        print(f"{photo}: {runtime} vs reference, max logit difference "
              f"{comparison.max_abs_error:.2e} (logits up to {np.abs(expected).max():.1f})")
        assert comparison.rel_error < DEFAULT_RTOL, comparison
        assert top5(logits[runtime]) == top5(expected)
    print(f"{photo}: tvm vs onnxruntime, max logit difference "
          f"{np.abs(logits['tvm'] - logits['onnxruntime']).max():.2e}")


def test_chelsea_is_a_cat(outputs):
    assert short_name(top5(outputs["skimage:chelsea"]["tvm"])[0]) in CATS


def test_classify_cli(built_library):
    path, _ = built_library(SOURCE)
    result = run_module("classify", "skimage:chelsea", "--lib", str(path), "--top", "3")
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    assert "mobilenet_v2_imagenet on x86_64" in header
    assert len(lines) == 3 and "%" in lines[0]


def test_on_the_emulated_rpi4(outputs, emulated_rpi4, tmp_path):
    """The pretrained model cross-compiled for rpi4 gives the reference's top-5 on the
    emulated aarch64 device, through the tracker; classify prints the device's labels."""
    path = tmp_path / "rpi4-v2.so"
    build_library(import_model(SOURCE), load_target("rpi4"), path, SOURCE)
    result = run_module("classify", "skimage:chelsea", "--lib", str(path), "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}")
    assert result.returncode == 0, result.stderr
    header, first, *_ = result.stdout.splitlines()
    assert EMULATED_LABEL in header and first.endswith("Egyptian cat")
    library = load(path, emulated_rpi4)  # after the CLI: a session holds the only device
    for photo in PHOTOS:
        logits = library.run(imagenet.preprocess(imagenet.load_image(photo)))
        expected = outputs[photo]["reference"]
        comparison = compare(logits, expected)
        print(f"{photo}: emulated rpi4 vs reference, max logit difference "
              f"{comparison.max_abs_error:.2e}")
        assert comparison.rel_error < DEFAULT_RTOL and top5(logits) == top5(expected)
