"""Trust boundaries: a model checkpoint cannot run code when it is read, and the emulated
device's RPC server listens on loopback only."""

import io
import os
import pickle

import psutil
import pytest

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.models import pretrained


class Payload:
    """Pickles as a call of os.system: what a malicious checkpoint would hold."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_cannot_run_code(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "mobilenet_v2.pth"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UserError, match="is not torchvision's"):  # refused by its digest
        pretrained.read_checkpoint(evil)
    # Even past the digest, the unpickler admits only the globals of a state dict.
    with pytest.raises(pickle.UnpicklingError, match="unexpected global posix.system"):
        pretrained._CheckpointUnpickler(io.BytesIO(evil.read_bytes()), {}).load()
    assert not marker.exists()


def test_the_emulated_device_listens_on_loopback_only(emulated_rpi4):
    """Every socket the suite's emulated device (its RPC server and the workers it forks)
    listens on is bound to 127.0.0.1."""
    servers = [process for process in psutil.process_iter(["cmdline"])
               if "rpc_server" in " ".join(process.info["cmdline"] or [])
               and f"{emulated_rpi4.host}:{emulated_rpi4.port}" in process.info["cmdline"]]
    assert servers, "the emulated device's server process was not found"
    pids = {p.pid for server in servers for p in [server, *server.children(recursive=True)]}
    listening = {c.laddr.ip for c in psutil.net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids}
    assert listening == {"127.0.0.1"}
