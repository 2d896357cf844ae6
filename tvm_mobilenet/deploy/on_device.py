"""Verify and time the MobileNet in this folder on the device itself.

Copied as ``run.py`` into every deploy bundle (``python -m tvm_mobilenet.build ... --bundle
DIR``); it needs only NumPy and TVM's runtime, not tvm_mobilenet:

    python3 run.py              # verify against the expected logits, then time 20 runs
    python3 run.py --repeat 100

Exit code 0 when max |output - expected| / max |expected| <= 1e-4 (the fp32 tolerance of
tvm_mobilenet.verify; the expected logits come from its float64 NumPy reference), else 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

HERE = Path(__file__).resolve().parent
RTOL = 1e-4
#: Registered by tvm_mobilenet's emulated device (qemu): its timings are not a device's.
EMULATED_FUNC = "tvm_mobilenet.emulated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs (default 20)")
    parser.add_argument("--threads", type=int, default=None,
                        help="TVM runtime threads (default: TVM's choice, or TVM_NUM_THREADS)")
    args = parser.parse_args(argv)
    spec = json.loads((HERE / "model.json").read_text())
    if args.threads:
        tvm.get_global_func("runtime.config_threadpool")(1, args.threads)
    device = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(HERE / "model.so")), device)
    x, expected = np.load(HERE / "input.npy"), np.load(HERE / "expected.npy")
    vm.set_input("main", tvm.runtime.tensor(x, device))
    vm.invoke_stateful("main")
    output = vm.get_outputs("main").numpy()
    error = float(np.abs(output.astype(np.float64) - expected).max())
    relative = error / float(np.abs(expected).max())
    passed = relative <= RTOL
    print(f"{spec['model']} for {spec['target']} on {platform.machine()}, TVM {tvm.__version__}")
    print(f"max abs error {error:.3e}, relative {relative:.3e} (tolerance {RTOL:g}), top-1 "
          f"{int(output.argmax())} vs expected {int(expected.argmax())}: "
          f"{'PASS' if passed else 'FAIL'}")
    timer = vm.time_evaluator("invoke_stateful", device, number=1, repeat=args.repeat)
    seconds = np.asarray(timer("main").results)
    emulated = tvm.get_global_func(EMULATED_FUNC, allow_missing=True) is not None
    print(f"latency: median {np.median(seconds) * 1e3:.2f} ms, p90 "
          f"{np.percentile(seconds, 90) * 1e3:.2f} ms over {args.repeat} runs"
          + (" [emulated (qemu), not device speed]" if emulated else ""))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
