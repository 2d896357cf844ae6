"""Reaching devices through TVM's RPC tracker, with errors that say how to set one up."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from .cli import UserError

DEFAULT_TRACKER = "127.0.0.1:9190"
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Tracker:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_tracker(text: str | None) -> Tracker:
    """'HOST:PORT' (default: $TVM_TRACKER_HOST:$TVM_TRACKER_PORT, else 127.0.0.1:9190)."""
    if text is None:
        env_host, env_port = os.environ.get("TVM_TRACKER_HOST"), os.environ.get("TVM_TRACKER_PORT")
        text = f"{env_host}:{env_port}" if env_host and env_port else DEFAULT_TRACKER
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"bad tracker address {text!r}: expected HOST:PORT, e.g. {DEFAULT_TRACKER}")
    return Tracker(host, int(port))


def setup_help(tracker: Tracker, key: str) -> str:
    return (f"start a tracker on this machine with `python -m tvm.exec.rpc_tracker --host "
            f"0.0.0.0 --port {tracker.port}`, then on the device `python3 -m "
            f"tvm.exec.rpc_server --tracker <this machine's address>:{tracker.port} --key {key}`"
            f", and pass --rpc-tracker HOST:{tracker.port} --rpc-key {key}")


def free_devices(tracker: Tracker, key: str) -> int:
    """Devices registered under `key` that are free now; fails fast with setup instructions."""
    try:
        with socket.create_connection((tracker.host, tracker.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise UserError(f"cannot reach an RPC tracker at {tracker} ({error.strerror or error}); "
                        + setup_help(tracker, key)) from error
    from tvm import rpc

    summary = rpc.connect_tracker(tracker.host, tracker.port).summary()
    queue = summary.get("queue_info", {}).get(key)
    if not queue:
        keys = ", ".join(sorted(summary.get("queue_info", {}))) or "none"
        raise UserError(f"the tracker at {tracker} has no device with key {key!r} (keys: "
                        f"{keys}); " + setup_help(tracker, key))
    return int(queue.get("free", 0))
