"""Reaching devices through TVM's RPC (a tracker and a key, or a server directly), with errors
that say how to set one up and a bounded wait everywhere."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from dataclasses import dataclass

from tvm_mobilenet.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TRACKER = "127.0.0.1:9190"
CONNECT_TIMEOUT_S = 5.0
#: Seconds a device session may live; a device that stops answering ends the run after this.
SESSION_TIMEOUT_S = 600
#: How results measured on `tvm_mobilenet.device`'s emulated device are labelled, everywhere.
EMULATED_LABEL = "emulated (qemu), not device speed"
#: Global function every process of the emulated device registers, so that a client can tell
#: an emulated device from a real one.
EMULATED_FUNC = "tvm_mobilenet.emulated"


@dataclass(frozen=True)
class Endpoint:
    """An RPC tracker plus the key of the devices to ask for, or (key None) one RPC server."""

    host: str
    port: int
    key: str | None = None

    def __str__(self) -> str:
        return (f"key {self.key!r} at tracker {self.host}:{self.port}" if self.key
                else f"RPC server {self.host}:{self.port}")


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"bad address {text!r}: expected HOST:PORT with a port from 1 to "
                        f"65535, e.g. {DEFAULT_TRACKER}")
    return host, int(port)


def default_tracker() -> str:
    """$TVM_TRACKER_HOST:$TVM_TRACKER_PORT (TVM's convention), else 127.0.0.1:9190."""
    host, port = os.environ.get("TVM_TRACKER_HOST"), os.environ.get("TVM_TRACKER_PORT")
    return f"{host}:{port}" if host and port else DEFAULT_TRACKER


def setup_help(endpoint: Endpoint) -> str:
    if not endpoint.key:
        return (f"on the device run `python3 -m tvm.exec.rpc_server --host 0.0.0.0 --port "
                f"{endpoint.port}`")
    return (f"start a tracker on this machine with `python -m tvm.exec.rpc_tracker --host "
            f"0.0.0.0 --port {endpoint.port}`, then on the device `python3 -m "
            f"tvm.exec.rpc_server --tracker <this machine's address>:{endpoint.port} --key "
            f"{endpoint.key}` (or, without a device, `python -m tvm_mobilenet.device emulate "
            f"--tracker {endpoint.host}:{endpoint.port} --key {endpoint.key}`), and pass "
            f"--rpc-tracker HOST:{endpoint.port} --rpc-key {endpoint.key}")


def _connect_error(endpoint: Endpoint) -> OSError | None:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as error:
        return error


def is_listening(endpoint: Endpoint) -> bool:
    return _connect_error(endpoint) is None


def _require_listening(endpoint: Endpoint) -> None:
    error = _connect_error(endpoint)
    if error is not None:
        what = "an RPC tracker" if endpoint.key else "an RPC server"
        raise UserError(f"cannot reach {what} at {endpoint.host}:{endpoint.port} "
                        f"({error.strerror or error}); " + setup_help(endpoint)) from error


def free_devices(endpoint: Endpoint) -> int:
    """Devices registered under the endpoint's key that are free now; fails fast with setup
    instructions when the tracker is unreachable or has no such key."""
    _require_listening(endpoint)
    from tvm import rpc

    summary = rpc.connect_tracker(endpoint.host, endpoint.port).summary()
    queue = summary.get("queue_info", {}).get(endpoint.key)
    if not queue:
        keys = ", ".join(sorted(summary.get("queue_info", {}))) or "none"
        raise UserError(f"the tracker at {endpoint.host}:{endpoint.port} has no device with key "
                        f"{endpoint.key!r} (keys: {keys}); " + setup_help(endpoint))
    return int(queue.get("free", 0))


def registered_devices(endpoint: Endpoint) -> int:
    """Devices registered under the endpoint's key, busy or free; 0 when the tracker does not
    answer (it has stopped, or restarted and the devices have not registered again yet)."""
    if not is_listening(endpoint):
        return 0
    from tvm import rpc

    try:
        servers = rpc.connect_tracker(endpoint.host, endpoint.port).summary()["server_info"]
    except (OSError, RuntimeError, KeyError):
        return 0
    return sum(server.get("key") == f"server:{endpoint.key}" for server in servers)


def connect(endpoint: Endpoint):
    """An RPC session on the device (a `tvm.rpc.RPCSession`); waits for a busy device."""
    from tvm import rpc

    if endpoint.key:
        if free_devices(endpoint) == 0:
            logger.warning(f"all devices with {endpoint} are busy; waiting for one")
        connector = (lambda: rpc.connect_tracker(endpoint.host, endpoint.port).request(
            endpoint.key, session_timeout=SESSION_TIMEOUT_S))
    else:
        _require_listening(endpoint)
        connector = (lambda: rpc.connect(endpoint.host, endpoint.port,
                                         session_timeout=SESSION_TIMEOUT_S))
    try:
        return connector()
    except (RuntimeError, OSError) as error:
        raise UserError(f"cannot open a session on the device ({endpoint}): "
                        f"{str(error).strip().splitlines()[-1]}") from error


def is_emulated(session) -> bool:
    """True for `tvm_mobilenet.device`'s emulated device (it registers a marker function)."""
    try:
        session.get_function(EMULATED_FUNC)
    except (RuntimeError, AttributeError):
        return False
    return True


def device_label(endpoint: Endpoint, emulated: bool) -> str:
    """How reports name a device: its endpoint, and `EMULATED_LABEL` when it is emulated."""
    return f"device {endpoint}" + (f" [{EMULATED_LABEL}]" if emulated else "")


def probe(endpoint: Endpoint) -> str:
    """`device_label` of the device the endpoint leads to (opens and closes a session)."""
    session = connect(endpoint)
    try:
        return device_label(endpoint, is_emulated(session))
    finally:
        del session


def address(text: str) -> str:
    """An argparse type: HOST:PORT, checked as it is parsed."""
    try:
        parse_address(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_rpc_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "device", "run on a device through TVM's RPC; libraries built for a device preset "
                  "(e.g. rpi4) use its key at the default tracker when no flag is given")
    group.add_argument("--rpc-tracker", type=address, metavar="HOST:PORT", default=None,
                       help="RPC tracker to ask for a device (default for device libraries: "
                            f"$TVM_TRACKER_HOST:$TVM_TRACKER_PORT or {DEFAULT_TRACKER})")
    group.add_argument("--rpc-key", default=None,
                       help="tracker key of the device (default: the target preset's, e.g. rpi4)")
    group.add_argument("--rpc", type=address, metavar="HOST:PORT", default=None,
                       help="connect to one RPC server directly, without a tracker")


def endpoint_from_args(args: argparse.Namespace, preset_key: str | None) -> Endpoint | None:
    """Where to run: the flags, else the preset's key at the default tracker for device
    presets (`preset_key` set), else None (this machine)."""
    if args.rpc:
        if args.rpc_tracker or args.rpc_key:
            raise UserError("--rpc connects directly: do not combine it with --rpc-tracker or "
                            "--rpc-key")
        return Endpoint(*parse_address(args.rpc))
    if args.rpc_tracker or args.rpc_key or preset_key:
        key = args.rpc_key or preset_key
        if not key:
            raise UserError("--rpc-tracker needs --rpc-key (the key the device registered "
                            "with)")
        return Endpoint(*parse_address(args.rpc_tracker or default_tracker()), key=key)
    return None
