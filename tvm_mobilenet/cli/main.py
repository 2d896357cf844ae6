"""`tvm-mobilenet <verb> ...`: one command for every verb; each verb is a module of `cli`."""

from __future__ import annotations

import importlib
import sys

#: Verb -> what it does, in pipeline order.
VERBS = {
    "models": "export MobileNetV1/V2 built from the papers' tables, or summarise them",
    "targets": "list the target presets",
    "logs": "list the tuning logs, or slim one for committing",
    "tune": "the main job: tune, pick, build, verify and benchmark a model",
    "build": "compile a model for a target into a library",
    "verify": "compare a built library with the NumPy reference",
    "bench": "time a built library, optionally beside onnxruntime",
    "profile": "where one inference's time goes, by task kind",
    "classify": "label a photo with the pretrained MobileNetV2",
    "bundle": "write a deploy folder that checks itself on the device",
    "device": "set up and serve the emulated aarch64 device",
}


def usage() -> str:
    lines = ["usage: tvm-mobilenet <verb> [flags]   (tvm-mobilenet <verb> --help for its flags)",
             "", "verbs:"]
    lines += [f"  {verb:<9} {summary}" for verb, summary in VERBS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    verb, *rest = argv
    if verb not in VERBS:
        print(f"{usage()}\n\nerror: unknown verb {verb!r}", file=sys.stderr)
        return 2
    return importlib.import_module(f"tvm_mobilenet.cli.{verb}").main(rest)


if __name__ == "__main__":
    sys.exit(main())
