"""Bad input, verb by verb and flag by flag: one `error:` line, exit code 2, nothing lost.

The rows are checked against the verbs' own argparse definitions: a flag that takes a value
and has no row here fails `test_every_flag_has_a_row`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import shutil
import time
from pathlib import Path
from unittest import mock

import pytest

from tvm_mobilenet.cli.main import VERBS
from tvm_mobilenet.cli.main import main as cli
from tvm_mobilenet.frontend.importer import ModelSource
from tvm_mobilenet.tuning import log as tuning_log

#: The library the rows use: small, built once per session (`conftest.built_library`).
TINY = ModelSource("mobilenet_v1", 0.25, 32)
TINY_FLAGS = ["--model", "mobilenet_v1", "--alpha", "0.25", "--resolution", "32"]
#: A bad row must be refused before any real work: well within this.
SECONDS_PER_ROW = 60


def build(*args: str) -> list[str]:
    return ["build", *TINY_FLAGS, "-o", "{out}/x.so", *args]


def tune(*args: str) -> list[str]:
    return ["tune", *TINY_FLAGS, "--list-tasks", *args]


#: (verb, flag) -> (arguments, a fragment the error line must contain). {lib} is a built
#: library, {out} a folder holding a file of the user's, {log} a tuning log.
ROWS: dict[tuple[str, str], tuple[list[str], str]] = {
    ("models export", "name"): (["models", "export", "resnet50", "-o", "{out}/m.onnx"],
                                "resnet50"),
    ("models export", "--alpha"): (["models", "export", "mobilenet_v1", "--alpha", "0", "-o",
                                    "{out}/m.onnx"], "alpha"),
    ("models export", "--resolution"): (["models", "export", "mobilenet_v1", "--resolution", "8",
                                         "-o", "{out}/m.onnx"], "resolution"),
    ("models export", "--expansion"): (["models", "export", "mobilenet_v1", "--expansion", "3",
                                        "-o", "{out}/m.onnx"], "expansion"),
    ("models export", "--seed"): (["models", "export", "mobilenet_v1", "--seed", "-1", "-o",
                                   "{out}/m.onnx"], "--seed"),
    ("models export", "--output"): (["models", "export", "mobilenet_v1", "-o", "{out}/m.txt"],
                                    ".onnx"),
    ("models summary", "name"): (["models", "summary", "resnet50"], "resnet50"),
    ("models summary", "--alpha"): (["models", "summary", "mobilenet_v2", "--alpha", "-1"],
                                    "alpha"),
    ("models summary", "--resolution"): (["models", "summary", "mobilenet_v2",
                                          "--resolution", "x"], "--resolution"),
    ("models summary", "--expansion"): (["models", "summary", "mobilenet_v2", "--expansion",
                                         "0"], "expansion"),
    ("logs list", "--log-dir"): (["logs", "list", "--log-dir", "{out}/missing"],
                                 "is not a folder"),
    ("logs slim", "log"): (["logs", "slim", "{out}"], "is not a tuning log"),
    ("logs slim", "--keep"): (["logs", "slim", "{log}", "--keep", "0"], "--keep"),
    ("tune", "--target"): (tune("--target", "nope"), "nope"),
    ("tune", "--model"): (["tune", "--model", "resnet50", "--list-tasks"], "resnet50"),
    ("tune", "--alpha"): (tune("--alpha", "0"), "alpha"),
    ("tune", "--resolution"): (tune("--resolution", "31"), "resolution"),
    ("tune", "--expansion"): (tune("--expansion", "4"), "expansion"),
    ("tune", "--seed"): (tune("--seed", "x"), "--seed"),
    ("tune", "--ops"): (tune("--ops", "winograd"), "winograd"),
    ("tune", "--trials"): (tune("--trials", "-1"), "--trials"),
    ("tune", "--log-dir"): (tune("--log-dir", "/proc/logs"), "cannot write"),
    ("tune", "--output"): (tune("-o", "/proc/x.so"), "cannot write"),
    ("tune", "--runs"): (tune("--runs", "0"), "--runs"),
    ("tune", "--threads"): (tune("--threads", "1,0"), "--threads"),
    ("tune", "--search-seed"): (tune("--search-seed", "-2"), "--search-seed"),
    ("tune", "--plot"): (tune("--plot", "{out}/plot.txt"), ".png"),
    ("tune", "--rpc-tracker"): (tune("--rpc-tracker", "nohost"), "nohost"),
    ("tune", "--rpc-key"): (tune("--rpc", "127.0.0.1:9090", "--rpc-key", "rpi4"), "--rpc"),
    ("tune", "--rpc"): (tune("--rpc", "127.0.0.1:99999"), "99999"),
    ("build", "--model"): (["build", "--model", "{out}/missing.onnx", "-o", "{out}/x.so"],
                           "missing.onnx"),
    ("build", "--alpha"): (build("--alpha", "nan"), "alpha"),
    ("build", "--resolution"): (build("--resolution", "0"), "resolution"),
    ("build", "--expansion"): (build("--expansion", "2"), "expansion"),
    ("build", "--seed"): (build("--seed", "-5"), "--seed"),
    ("build", "--target"): (build("--target", "{out}/user.txt"), "user.txt"),
    ("build", "--input-shape"): (build("--input-shape", "1,3,x"), "1,3,x"),
    ("build", "--output"): (["build", *TINY_FLAGS, "-o", "/proc/x.so"], "cannot write"),
    ("build", "--log-dir"): (build("--log-dir", "{out}/missing"), "is not a folder"),
    ("build", "--schedules"): (build("--schedules", "fast"), "fast"),
    ("build", "--bundle"): (build("--bundle", "/proc/bundle"), "cannot write"),
    ("verify", "library"): (["verify", "{out}/missing.so"], "missing.so"),
    ("verify", "--model"): (["verify", "{lib}", "--model", "resnet50"], "resnet50"),
    ("verify", "--alpha"): (["verify", "{lib}", "--alpha", "0.5"], "--model"),
    ("verify", "--resolution"): (["verify", "{lib}", "--resolution", "160"], "--model"),
    ("verify", "--expansion"): (["verify", "{lib}", "--expansion", "4"], "--model"),
    ("verify", "--seed"): (["verify", "{lib}", "--seed", "7"], "--model"),
    ("verify", "--inputs"): (["verify", "{lib}", "--inputs", "0"], "--inputs"),
    ("verify", "--input-seed"): (["verify", "{lib}", "--input-seed", "-1"], "--input-seed"),
    ("verify", "--rtol"): (["verify", "{lib}", "--rtol", "0"], "--rtol"),
    ("verify", "--rpc-tracker"): (["verify", "{lib}", "--rpc-tracker", "host:"], "host:"),
    ("verify", "--rpc-key"): (["verify", "{lib}", "--rpc", "127.0.0.1:9090", "--rpc-key", "x"],
                              "--rpc"),
    ("verify", "--rpc"): (["verify", "{lib}", "--rpc", "9090"], "9090"),
    ("bench", "library"): (["bench", "{out}/user.txt"], "user.txt"),
    ("bench", "--runs"): (["bench", "{lib}", "--runs", "-3"], "--runs"),
    ("bench", "--threads"): (["bench", "{lib}", "--threads", "two"], "--threads"),
    ("bench", "--compare"): (["bench", "{lib}", "--compare", "tensorflow"], "tensorflow"),
    ("bench", "--model"): (["bench", "{lib}", "--compare", "onnxruntime", "--model",
                            "{out}/missing.onnx"], "missing.onnx"),
    ("bench", "--alpha"): (["bench", "{lib}", "--alpha", "2"], "--model"),
    ("bench", "--resolution"): (["bench", "{lib}", "--resolution", "96"], "--model"),
    ("bench", "--expansion"): (["bench", "{lib}", "--expansion", "6"], "--model"),
    ("bench", "--seed"): (["bench", "{lib}", "--seed", "1"], "--model"),
    ("bench", "--rpc-tracker"): (["bench", "{lib}", "--rpc-tracker", ":9190"], ":9190"),
    ("bench", "--rpc-key"): (["bench", "{lib}", "--rpc", "127.0.0.1:9090", "--rpc-key", "x"],
                             "--rpc"),
    ("bench", "--rpc"): (["bench", "{lib}", "--rpc", "localhost:0"], "localhost:0"),
    ("profile", "library"): (["profile", "{out}"], str("{out}")),
    ("profile", "--threads"): (["profile", "{lib}", "--threads", ""], "--threads"),
    ("profile", "--runs"): (["profile", "{lib}", "--runs", "0"], "--runs"),
    ("profile", "--top", ): (["profile", "{lib}", "--top", "0"], "--top"),
    ("classify", "image"): (["classify", "{out}/user.txt", "--lib", "{lib}"], "user.txt"),
    ("classify", "--lib"): (["classify", "skimage:chelsea", "--lib", "{out}/missing.so"],
                            "missing.so"),
    ("classify", "--target"): (["classify", "skimage:chelsea", "--target", "nope"], "nope"),
    ("classify", "--top"): (["classify", "skimage:chelsea", "--lib", "{lib}", "--top", "0"],
                            "--top"),
    ("classify", "--rpc-tracker"): (["classify", "skimage:chelsea", "--lib", "{lib}",
                                     "--rpc-tracker", "a:b"], "a:b"),
    ("classify", "--rpc-key"): (["classify", "skimage:chelsea", "--lib", "{lib}", "--rpc",
                                 "127.0.0.1:9090", "--rpc-key", "x"], "--rpc"),
    ("classify", "--rpc"): (["classify", "skimage:chelsea", "--lib", "{lib}", "--rpc", "x"],
                            "'x'"),
    ("bundle", "library"): (["bundle", "{out}/missing.so", "-o", "{out}/bundle"], "missing.so"),
    ("bundle", "--output"): (["bundle", "{lib}", "-o", "/proc/bundle"], "cannot write"),
    ("device emulate", "--tracker"): (["device", "emulate", "--tracker", "nohost", "--key",
                                       "rpi4"], "nohost"),
    ("device emulate", "--port"): (["device", "emulate", "--port", "70000"], "--port"),
    ("device emulate", "--key"): (["device", "emulate", "--port", "9091", "--key", "rpi4"],
                                  "--tracker"),
}


class _Parsed(Exception):
    pass


def parser_of(verb: str) -> argparse.ArgumentParser:
    """A verb's parser, as its `main` builds it (caught as it starts parsing)."""
    box = {}

    def capture(self, args=None, namespace=None):
        box["parser"] = self
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        with pytest.raises(_Parsed):
            importlib.import_module(f"tvm_mobilenet.cli.{verb}").main([])
    return box["parser"]


def flags_with_values(parser: argparse.ArgumentParser, prefix: str) -> set[tuple[str, str]]:
    """(verb and subcommand, flag) of every argument that takes a value."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= flags_with_values(sub, f"{prefix} {name}")
        elif action.nargs != 0 and not isinstance(action, argparse._HelpAction):
            found.add((prefix, max(action.option_strings, key=len, default=action.dest)))
    return found


def test_every_flag_has_a_row():
    flags = set().union(*(flags_with_values(parser_of(verb), verb) for verb in VERBS))
    assert flags - set(ROWS) == set(), "flags without a bad-input row"
    assert set(ROWS) - flags == set(), "rows for flags that no longer exist"


@pytest.fixture(scope="module")
def user_files(built_library, tmp_path_factory) -> dict[str, Path]:
    """The user's things the rows must leave alone: a library, a tuning log and a folder."""
    library, _ = built_library(TINY)
    out = tmp_path_factory.mktemp("user")
    (out / "user.txt").write_text("the user's notes\n")
    log = out.parent / f"{out.name}-log"
    committed = tuning_log.log_dir("x86-znver4", "mobilenet_v1-1.0-224")
    shutil.copytree(committed / tuning_log.SELECTED_DIR, log)
    shutil.copy(committed / tuning_log.SUMMARY_FILE, log)
    return {"lib": library, "out": out, "log": log}


def fingerprint(paths: list[Path]) -> dict[str, str]:
    files = [f for path in paths for f in ([path] if path.is_file() else path.rglob("*"))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


@pytest.mark.parametrize("row", sorted(ROWS), ids=lambda row: " ".join(row))
def test_bad_input_is_one_error_line_and_changes_nothing(row, user_files, capsys):
    template, fragment = ROWS[row]
    places = {name: str(path) for name, path in user_files.items()}
    argv = [arg.format(**places) for arg in template]
    fragment = fragment.format(**places)
    library = user_files["lib"]
    watched = [library, library.with_suffix(".json"), user_files["out"], user_files["log"]]
    before, environment = fingerprint(watched), dict(os.environ)
    start = time.monotonic()
    try:
        code = cli(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.out + captured.err
    assert lines and "error:" in lines[-1] and fragment in lines[-1], captured.err
    assert sum("error" in line for line in lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert elapsed < SECONDS_PER_ROW
    assert fingerprint(watched) == before, "the user's files changed"
    # Later processes of the caller inherit it: a spin count left behind slowed all of them.
    assert dict(os.environ) == environment
