"""Seeded random weights for an `Architecture`, with BatchNorm folded into conv biases.

Each conv gets He-normal weights (He et al., arXiv:1502.01852). A BatchNorm follows every
conv, as in both papers; its running statistics are *calibrated* on a seeded random input
(the per-channel mean and standard deviation of the conv output), so that after folding
every conv output has a controlled mean and spread. Activations therefore neither vanish
nor saturate through the whole depth, and numeric comparisons of logits mean something.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tvm_mobilenet.models.architectures import Architecture, Layer
from tvm_mobilenet.reference import numpy_ops

#: Range of the folded BatchNorm scale (gamma) and mean of its shift (beta).
GAMMA_RANGE = (0.5, 1.5)
BETA_MEAN = 0.5
BATCHNORM_EPS = 1e-5


@dataclass(frozen=True)
class LayerWeights:
    weight: np.ndarray  # conv: (out, in/groups, k, k); classifier: (out, in)
    bias: np.ndarray


def random_weights(arch: Architecture, seed: int = 0) -> dict[str, LayerWeights]:
    """Weights for every conv and the classifier of `arch`, float32, reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(arch.input_shape)
    block_inputs: dict[str, np.ndarray] = {}
    result: dict[str, LayerWeights] = {}
    for layer in arch.layers:
        block_inputs[layer.name] = x
        if layer.kind == "pool":
            x = numpy_ops.global_average_pool(x).reshape(1, -1)
            continue
        if layer.kind == "classifier":
            weight = rng.standard_normal((layer.out_channels, layer.in_channels))
            weight *= np.sqrt(1.0 / layer.in_channels) / x.std()
            result[layer.name] = LayerWeights(weight.astype(np.float32),
                                              np.zeros(layer.out_channels, np.float32))
            continue
        weights = _calibrated_conv(layer, x, rng)
        result[layer.name] = weights
        x = numpy_ops.conv2d(x, weights.weight.astype(np.float64), weights.bias, _strides(layer),
                             _pads(layer), layer.groups)
        if layer.relu6:
            x = numpy_ops.relu6(x)
        if layer.residual_from:
            x = x + block_inputs[layer.residual_from]
    return result


def _calibrated_conv(layer: Layer, x: np.ndarray, rng: np.random.Generator) -> LayerWeights:
    fan_in = (layer.in_channels // layer.groups) * layer.kernel**2
    shape = (layer.out_channels, layer.in_channels // layer.groups, layer.kernel, layer.kernel)
    weight = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    raw = numpy_ops.conv2d(x, weight, None, _strides(layer), _pads(layer), layer.groups)
    mean = raw.mean(axis=(0, 2, 3))
    std = np.sqrt(raw.var(axis=(0, 2, 3)) + BATCHNORM_EPS)
    gamma = rng.uniform(*GAMMA_RANGE, layer.out_channels)
    beta = rng.normal(BETA_MEAN if layer.relu6 else 0.0, 0.25, layer.out_channels)
    scale = gamma / std
    folded_weight = weight * scale.reshape(-1, 1, 1, 1)
    folded_bias = beta - mean * scale
    return LayerWeights(folded_weight.astype(np.float32), folded_bias.astype(np.float32))


def _strides(layer: Layer) -> tuple[int, int]:
    return (layer.stride, layer.stride)


def _pads(layer: Layer) -> tuple[int, int, int, int]:
    return (layer.padding,) * 4
