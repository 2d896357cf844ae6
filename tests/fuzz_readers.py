"""Fuzz one file reader: ``python tests/fuzz_readers.py READER CASES SEED``.

Each case is a valid file of the reader's kind, then truncated, byte-flipped or with a chunk
repeated (seeded). The reader must accept it or raise `UserError`. Then come the reader's
plausible-but-wrong files (well-formed, wrong inside: a huge declared tensor, an index out of
range), which it must refuse. One line per case: ``case N: ok | error | BUG <exception>``
(``wrong N: ...`` for the latter), printed before and after it runs, so a crash (a signal
inside a parser) names its case; then the process's peak memory. Run it in a process of its
own.
"""

from __future__ import annotations

import json
import random
import resource
import struct
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.resources import COMMITTED_LOGS, PRESETS_DIR

#: Bytes flipped in a flip case.
FLIPS = 8


def mutations(data: bytes, cases: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for index in range(cases):
        kind = index % 3
        if kind == 0:
            yield data[:rng.randrange(len(data))]
        elif kind == 1:
            mutated = bytearray(data)
            for _ in range(FLIPS):
                mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
            yield bytes(mutated)
        else:
            start = rng.randrange(len(data))
            chunk = data[start:start + rng.randrange(1, 256)]
            at = rng.randrange(len(data))
            yield data[:at] + chunk + data[at:]


class Reader(NamedTuple):
    valid: bytes
    read: Callable[[bytes], object]
    #: Well-formed files with something wrong inside, each to be refused.
    wrong: list[bytes]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _small_architecture():
    from tvm_mobilenet.models.architectures import architecture

    return architecture("mobilenet_v1", 0.25, 32)


def onnx_case(folder: Path) -> Reader:
    from tvm_mobilenet.frontend.importer import ModelSource, import_model
    from tvm_mobilenet.models.onnx_export import export

    def model_with(change: Callable) -> bytes:
        model = export(_small_architecture(), 0)
        change(model)
        return model.SerializeToString()

    def huge_input(model) -> None:
        for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
            dim.dim_value = 1 << 20

    def huge_weight(model) -> None:
        next(i for i in model.graph.initializer if len(i.dims) == 4).dims[0] = 1 << 30

    def flat_input(model) -> None:
        del model.graph.input[0].type.tensor_type.shape.dim[2:]

    path = folder / "model.onnx"
    return Reader(model_with(lambda model: None),
                  lambda data: import_model(ModelSource(str(write(path, data)))),
                  [model_with(huge_input), model_with(huge_weight), model_with(flat_input)])


def tflite_case(folder: Path) -> Reader:
    from tvm_mobilenet.frontend.importer import ModelSource, import_model
    from tvm_mobilenet.models.tflite_export import to_tflite
    from tvm_mobilenet.models.weights import random_weights

    arch = _small_architecture()
    valid = to_tflite(arch, random_weights(arch, 0))
    shape = struct.pack("<5i", 4, 1, 32, 32, 3)  # the input's shape vector: length, sizes
    assert valid.count(shape) == 1
    path = folder / "model.tflite"
    return Reader(valid, lambda data: import_model(ModelSource(str(write(path, data)))), [
        valid.replace(shape, struct.pack("<5i", 4, 1, 1 << 20, 1 << 20, 3)),  # a huge input
        valid.replace(shape, struct.pack("<5i", 1 << 30, 1, 32, 32, 3)),  # a billion sizes
    ])


def target_case(folder: Path) -> Reader:
    from tvm_mobilenet.target.presets import load_target

    valid = json.loads((PRESETS_DIR / "rpi4.json").read_bytes())
    target = valid["target"]
    path = folder / "preset.json"
    return Reader(json.dumps(valid).encode(),
                  lambda data: load_target(str(write(path, data))).tvm_target,
                  [json.dumps(valid | change).encode() for change in (
                      {"target": "llvm"}, {"device": "phone"}, {"rpc_key": None},
                      {"target": target | {"mcpu": "cortex-a7200"}},
                      {"target": target | {"num-cores": "four"}},
                      {"target": target | {"kind": "cuda"}})] + [b"[]"])


def library_case(folder: Path) -> Reader:
    from tvm_mobilenet.runtime.library import LibraryInfo

    library = folder / "model.so"
    description = {
        "input_name": "input", "input_shape": [1, 3, 32, 32], "model": "mobilenet_v1-0.25-32",
        "source": {"spec": "mobilenet_v1", "alpha": 0.25, "resolution": 32,
                   "expansion": None, "seed": 0},
        "target": "x86", "target_dict": {"kind": "llvm"}, "tuning_log": None,
        "tvm_version": "0.27.0.post1", "rpc_key": None}
    return Reader(json.dumps(description).encode(),
                  lambda data: (write(LibraryInfo.path_for(library), data)
                                and LibraryInfo.load(library)),
                  [json.dumps(description | change).encode() for change in (
                      {"input_shape": [1, 3, 1 << 20, 1 << 20]}, {"input_shape": [1, 3, 32]},
                      {"input_shape": [1, 3, "32", 32]}, {"source": "mobilenet_v1"},
                      {"tuning_log": 7}, {"extra": 1})])


def log_case(folder: Path) -> Reader:
    from tvm_mobilenet.tuning import log as tuning_log

    committed = COMMITTED_LOGS / "x86-znver4" / "mobilenet_v1-1.0-224" / tuning_log.SELECTED_DIR
    (folder / tuning_log.WORKLOAD_FILE).write_bytes(
        (committed / tuning_log.WORKLOAD_FILE).read_bytes())
    records = (committed / tuning_log.RECORD_FILE).read_bytes().splitlines(keepends=True)
    path = folder / tuning_log.RECORD_FILE

    def read(data: bytes) -> object:
        write(path, data)
        return tuning_log.open_database(folder).get_all_tuning_records()

    first = json.loads(records[0])
    return Reader(b"".join(records[:3]), read, [
        json.dumps([99, first[1]]).encode() + b"\n",  # a workload that is not in the log
        json.dumps([first[0], first[1][:1]]).encode() + b"\n",  # a record cut short
        json.dumps([first[0], "trace"]).encode() + b"\n",
        json.dumps({"workload": 0}).encode() + b"\n"])


def checkpoint_case(folder: Path) -> Reader:
    from tvm_mobilenet.models import pretrained

    path = folder / pretrained.CHECKPOINT_FILE
    return Reader(pretrained.checkpoint_path().read_bytes(),
                  lambda data: pretrained.read_checkpoint(write(path, data)), [b"", b"PK"])


def plan_case(folder: Path) -> Reader:
    """A Vulkan build's plan.json (its kernels and weights as built)."""
    from tvm_mobilenet.frontend.importer import ModelSource, import_model
    from tvm_mobilenet.gpu.codegen import compile_plan
    from tvm_mobilenet.gpu.plan import PLAN_FILE, Plan
    from tvm_mobilenet.target.presets import load_target

    compile_plan(import_model(ModelSource("mobilenet_v2", 0.35, 96)).mod,
                 load_target("vulkan").tvm_target).save(folder)
    valid = (folder / PLAN_FILE).read_bytes()
    meta = json.loads(valid)
    storage = next(name for name, value in meta["values"].items() if value[0] == "storage")
    kernel = meta["kernels"][0]
    return Reader(valid, lambda data: Plan.load(write(folder / PLAN_FILE, data).parent), [
        json.dumps(meta | {"values": meta["values"] | {storage: ["storage", 1 << 40]}}).encode(),
        json.dumps(meta | {"kernels": [kernel | {"name": "../../etc/passwd"}]}).encode(),
        json.dumps(meta | {"launches": [{"kernel": "missing", "buffers": []}]}).encode(),
        json.dumps(meta | {"output": ["v999", [1, 10], "float32"]}).encode()])


READERS = {"onnx": onnx_case, "tflite": tflite_case, "target": target_case,
           "library": library_case, "log": log_case, "checkpoint": checkpoint_case,
           "plan": plan_case}


def attempt(label: str, read: Callable[[bytes], object], data: bytes) -> None:
    print(f"{label}: ", end="", flush=True)
    try:
        read(data)
        print("ok", flush=True)
    except UserError:
        print("error", flush=True)
    except Exception as error:  # noqa: BLE001 (what the fuzzing is looking for)
        print(f"BUG {type(error).__name__}: {str(error).strip()[:200]!r}", flush=True)


def main(reader: str, cases: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tvm_mobilenet_fuzz_") as scratch:
        case = READERS[reader](Path(scratch))
        case.read(case.valid)  # the unmutated file must be read: the harness itself works
        for index, data in enumerate(mutations(case.valid, cases, seed)):
            attempt(f"case {index}", case.read, data)
        for index, data in enumerate(case.wrong):
            attempt(f"wrong {index}", case.read, data)
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
