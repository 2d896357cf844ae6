"""The layer tables reproduce the papers' MAC and parameter counts."""

import pytest

from tvm_mobilenet.models.architectures import architecture, make_divisible


def within(value: float, expected: float, rel: float = 0.03) -> bool:
    return abs(value - expected) <= rel * expected


# MobileNetV1 paper, Tables 6 and 7 (million mult-adds, million parameters).
@pytest.mark.parametrize("alpha, resolution, macs, params", [
    (1.0, 224, 569, 4.2), (0.75, 224, 325, 2.6), (0.5, 224, 149, 1.3), (0.25, 224, 41, 0.5),
    (1.0, 192, 418, 4.2), (1.0, 160, 290, 4.2), (1.0, 128, 186, 4.2),
])
def test_mobilenet_v1_matches_paper(alpha, resolution, macs, params):
    arch = architecture("mobilenet_v1", alpha, resolution)
    assert within(arch.macs / 1e6, macs)
    # The paper rounds parameters to 0.1 M.
    assert abs(arch.params / 1e6 - params) <= 0.05 + 0.03 * params


def test_mobilenet_v2_matches_paper():
    arch = architecture("mobilenet_v2", 1.0, 224)
    assert within(arch.macs / 1e6, 300) and within(arch.params / 1e6, 3.4)
    wide = architecture("mobilenet_v2", 1.4, 224)
    assert within(wide.macs / 1e6, 585)


def params_with_unfolded_batchnorm(arch) -> int:
    """Parameters counted as Keras does: no conv bias, 4 BatchNorm values per channel."""
    return sum(layer.params + (3 * layer.out_channels
                               if layer.kind not in ("pool", "classifier") else 0)
               for layer in arch.layers)


@pytest.mark.parametrize("name, alpha, keras_params", [
    ("mobilenet_v1", 1.0, 4_253_864), ("mobilenet_v2", 1.0, 3_538_984),
    ("mobilenet_v2", 1.4, 6_156_712),
])
def test_parameters_equal_keras_reference_implementation(name, alpha, keras_params):
    """The V2 paper gives 6.9 M parameters for α=1.4, which no reference implementation
    reproduces; Keras' MobileNetV2(alpha=1.4) has 6,156,712, and so do we, exactly."""
    assert params_with_unfolded_batchnorm(architecture(name, alpha, 224)) == keras_params


def test_v1_structure():
    arch = architecture("mobilenet_v1")
    assert arch.count("depthwise") == 13 and arch.count("pointwise") == 13
    assert arch.layers[-1].out_shape == (1, 1000)
    assert [l.out_size for l in arch.layers if l.kind == "pointwise"][-1] == 7


def test_v2_structure():
    arch = architecture("mobilenet_v2")
    assert arch.count("depthwise") == 17 and arch.count("project") == 17
    assert arch.count("expand") == 16  # the first bottleneck has t = 1
    residuals = [l for l in arch.layers if l.residual_from]
    assert len(residuals) == 10
    assert all(not l.relu6 for l in arch.layers if l.kind == "project")  # linear bottlenecks
    last = [l for l in arch.layers if l.kind == "pointwise"][-1]
    assert last.out_channels == 1280 and last.out_size == 7


def test_expansion_factor_changes_expand_layers():
    wide = architecture("mobilenet_v2", expansion=4)
    first_expand = next(l for l in wide.layers if l.kind == "expand")
    assert first_expand.out_channels == 16 * 4


def test_make_divisible_rounds_like_reference_code():
    assert make_divisible(32 * 0.35) == 16  # 11.2 -> 8 would lose more than 10 %
    assert make_divisible(24 * 1.4) == 32 and make_divisible(1280 * 1.4) == 1792


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="resnet"), "unknown architecture"),
    (dict(name="mobilenet_v1", alpha=0.0), "alpha"),
    (dict(name="mobilenet_v2", resolution=16), "resolution"),
    (dict(name="mobilenet_v1", expansion=6), "mobilenet_v2 only"),
])
def test_bad_hyperparameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        architecture(**kwargs)
