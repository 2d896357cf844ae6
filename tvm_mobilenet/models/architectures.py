"""MobileNetV1 and V2 as declarative layer tables, expanded into a flat list of layers.

Everything else (weights, ONNX export, the summary, MAC/parameter counts, tuning-task
expectations) derives from the `Layer` list that `architecture()` returns.

References:
  V1: Howard et al., "MobileNets", arXiv:1704.04861, Table 1 (body) and Tables 6-7 (α, ρ).
  V2: Sandler et al., "MobileNetV2", arXiv:1801.04381, Table 2 (t, c, n, s).
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ("mobilenet_v1", "mobilenet_v2")

#: Layer kinds, in the order the summary and reports list them.
#: "pointwise" is a 1×1 conv of V1 (and V2's final 1×1-1280); "expand"/"project" are V2's
#: 1×1 convs before and after the depthwise conv (the projection is linear: no ReLU6).
LAYER_KINDS = ("stem", "depthwise", "pointwise", "expand", "project", "pool", "classifier")

#: MobileNetV1 body (Table 1): one (output channels, stride) pair per depthwise separable
#: block, i.e. a 3×3 depthwise conv with that stride followed by a 1×1 pointwise conv.
V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)
V1_STEM_CHANNELS = 32

#: MobileNetV2 body (Table 2): (expansion t, output channels c, repeats n, first stride s).
#: A t of 6 is the paper's default expansion factor and is what `--expansion` replaces.
V2_BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
V2_STEM_CHANNELS = 32
V2_LAST_CHANNELS = 1280
V2_DEFAULT_EXPANSION = 6

NUM_CLASSES = 1000


@dataclass(frozen=True)
class Layer:
    """One layer of the flattened network (square feature maps, NCHW)."""

    name: str
    kind: str
    in_channels: int
    out_channels: int
    in_size: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    relu6: bool = True
    #: Name of the layer whose *input* is added to this layer's output (inverted residual).
    residual_from: str | None = None

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_size(self) -> int:
        if self.kind == "pool":
            return 1
        return (self.in_size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def params(self) -> int:
        if self.kind == "pool":
            return 0
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel**2
        return weights + self.out_channels

    @property
    def macs(self) -> int:
        """Multiply-accumulates, counted as the papers do (convolutions and the FC layer)."""
        if self.kind == "pool":
            return 0
        per_output = (self.in_channels // self.groups) * self.kernel**2
        return self.out_size**2 * self.out_channels * per_output

    @property
    def in_shape(self) -> tuple[int, ...]:
        if self.kind == "classifier":
            return (1, self.in_channels)
        return (1, self.in_channels, self.in_size, self.in_size)

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.kind in ("pool", "classifier"):
            return (1, self.out_channels)
        return (1, self.out_channels, self.out_size, self.out_size)


@dataclass(frozen=True)
class Architecture:
    """A MobileNet instance: its hyper-parameters and flattened layers."""

    name: str
    alpha: float
    resolution: int
    expansion: int | None
    layers: tuple[Layer, ...]

    @property
    def label(self) -> str:
        """Short identifier, e.g. ``mobilenet_v2-1.0-224`` (also used for tuning-log folders)."""
        return f"{self.name}-{float(self.alpha)!r}-{self.resolution}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def count(self, kind: str) -> int:
        return sum(layer.kind == kind for layer in self.layers)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never more than 10% down (V2 reference code)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class _LayerList:
    """Appends layers while tracking the running channel count and feature-map size."""

    def __init__(self, resolution: int) -> None:
        self.layers: list[Layer] = []
        self.channels = 3
        self.size = resolution

    def conv(self, name: str, kind: str, out_channels: int, kernel: int = 1, stride: int = 1,
             depthwise: bool = False, relu6: bool = True, residual_from: str | None = None) -> None:
        layer = Layer(name=name, kind=kind, in_channels=self.channels, out_channels=out_channels,
                      in_size=self.size, kernel=kernel, stride=stride,
                      groups=self.channels if depthwise else 1, relu6=relu6,
                      residual_from=residual_from)
        self.layers.append(layer)
        self.channels, self.size = out_channels, layer.out_size

    def head(self) -> None:
        self.layers.append(Layer("pool", "pool", self.channels, self.channels, self.size,
                                 kernel=self.size, relu6=False))
        self.layers.append(Layer("classifier", "classifier", self.channels, NUM_CLASSES, 1,
                                 relu6=False))


def mobilenet_v1(alpha: float = 1.0, resolution: int = 224) -> Architecture:
    """MobileNetV1 with width multiplier α and input resolution (the resolution multiplier ρ)."""
    net = _LayerList(resolution)
    net.conv("stem", "stem", int(V1_STEM_CHANNELS * alpha), kernel=3, stride=2)
    for index, (channels, stride) in enumerate(V1_BLOCKS, start=1):
        net.conv(f"block{index}.depthwise", "depthwise", net.channels, kernel=3, stride=stride,
                 depthwise=True)
        net.conv(f"block{index}.pointwise", "pointwise", int(channels * alpha))
    net.head()
    return Architecture("mobilenet_v1", alpha, resolution, None, tuple(net.layers))


def mobilenet_v2(alpha: float = 1.0, resolution: int = 224,
                 expansion: int = V2_DEFAULT_EXPANSION) -> Architecture:
    """MobileNetV2 with width multiplier α, input resolution and expansion factor t."""
    net = _LayerList(resolution)
    net.conv("stem", "stem", make_divisible(V2_STEM_CHANNELS * alpha), kernel=3, stride=2)
    index = 0
    for t, channels, repeats, first_stride in V2_BOTTLENECKS:
        t = expansion if t == V2_DEFAULT_EXPANSION else t
        out_channels = make_divisible(channels * alpha)
        for repeat in range(repeats):
            index += 1
            stride = first_stride if repeat == 0 else 1
            block_input = f"block{index}.{'expand' if t != 1 else 'depthwise'}"
            residual = block_input if stride == 1 and net.channels == out_channels else None
            if t != 1:
                net.conv(f"block{index}.expand", "expand", net.channels * t)
            net.conv(f"block{index}.depthwise", "depthwise", net.channels, kernel=3,
                     stride=stride, depthwise=True)
            net.conv(f"block{index}.project", "project", out_channels, relu6=False,
                     residual_from=residual)
    net.conv("last", "pointwise", make_divisible(V2_LAST_CHANNELS * max(1.0, alpha)))
    net.head()
    return Architecture("mobilenet_v2", alpha, resolution, expansion, tuple(net.layers))


def architecture(name: str, alpha: float = 1.0, resolution: int = 224,
                 expansion: int | None = None) -> Architecture:
    """Look up an architecture by name; raises ValueError for unknown names or bad sizes."""
    if alpha <= 0:
        raise ValueError(f"width multiplier alpha must be positive, got {alpha}")
    if resolution < 32:
        raise ValueError(f"resolution must be at least 32 pixels, got {resolution}")
    if name == "mobilenet_v1":
        if expansion is not None:
            raise ValueError("--expansion applies to mobilenet_v2 only")
        return mobilenet_v1(alpha, resolution)
    if name == "mobilenet_v2":
        t = V2_DEFAULT_EXPANSION if expansion is None else expansion
        if t < 1:
            raise ValueError(f"expansion factor must be at least 1, got {t}")
        return mobilenet_v2(alpha, resolution, t)
    raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
