"""Plain NumPy kernels (NCHW, float64) for the operators MobileNets are made of.

They are deliberately simple and independent of TVM and onnxruntime: the reference
interpreter (`reference/interpreter.py`) and the weight calibration (`models/weights.py`)
both use them.
"""

from __future__ import annotations

import numpy as np


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
           strides: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
           groups: int = 1, dilations: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Grouped 2-D convolution; `pads` is (top, left, bottom, right) as in ONNX."""
    n, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    if channels != group_channels * groups or out_channels % groups:
        raise ValueError(f"conv shapes do not agree: input {x.shape}, weight {weight.shape}, "
                         f"groups {groups}")
    (sh, sw), (dh, dw) = strides, dilations
    top, left, bottom, right = pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + left + right - dw * (kw - 1) - 1) // sw + 1
    patches = np.empty((n, channels, kh, kw, out_h, out_w), dtype=np.result_type(x, weight))
    for i in range(kh):
        for j in range(kw):
            patches[:, :, i, j] = padded[:, :, i * dh: i * dh + sh * (out_h - 1) + 1: sh,
                                         j * dw: j * dw + sw * (out_w - 1) + 1: sw]
    patches = patches.reshape(n, groups, group_channels * kh * kw, out_h * out_w)
    kernels = weight.reshape(groups, out_channels // groups, group_channels * kh * kw)
    out = np.matmul(kernels[None], patches).reshape(n, out_channels, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def global_average_pool(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C, 1, 1)."""
    return x.mean(axis=(2, 3), keepdims=True)


def dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer with `weight` of shape (out_features, in_features)."""
    out = x @ weight.T
    return out if bias is None else out + bias
