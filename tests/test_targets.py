"""Target presets: detection, clear errors for unknown or malformed targets."""

import json

import pytest
from conftest import run_module

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.target.presets import host_cores, load_target


def test_host_preset_detects_cpu_and_cores():
    preset = load_target("x86")
    assert preset.target["mcpu"] not in ("auto", "") and preset.num_cores == host_cores()
    assert preset.tvm_target.kind.name == "llvm"


def test_unknown_target_lists_presets():
    with pytest.raises(UserError, match="unknown target 'pdp11'.*x86-avx2"):
        load_target("pdp11")


def test_vulkan_presets_build_webgpu_and_tune_a_vulkan_stand_in():
    for name in ("vulkan", "vulkan-mobile"):
        preset = load_target(name)
        assert preset.device == "vulkan" and preset.tvm_target.kind.name == "webgpu"
        assert preset.tvm_tuning_target.kind.name == "vulkan"


@pytest.mark.parametrize("content, message", [
    ("{not json", "malformed"),
    (json.dumps({"target": {"kind": "llvm"}, "device": "host"}), "num-cores"),
    (json.dumps({"target": {"kind": "nonsense", "num-cores": 1}, "device": "host"}), "rejects"),
    (json.dumps({"target": {"kind": "llvm", "num-cores": 1}, "device": "toaster"}), "device"),
])
def test_malformed_target_files(tmp_path, content, message):
    path = tmp_path / "mine.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_target(str(path))


def test_targets_cli_lists_presets():
    result = run_module("targets")
    assert result.returncode == 0, result.stderr
    assert "x86-avx512" in result.stdout and "vulkan" in result.stdout
