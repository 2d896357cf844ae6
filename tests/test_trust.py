"""Trust boundaries: a model checkpoint cannot run code when it is read, and the emulated
device's RPC server listens on loopback only."""

import io
import os
import pickle
import time

import psutil
import pytest
from conftest import free_port

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.models import pretrained
from tvm_mobilenet.runtime import emulated_device as device
from tvm_mobilenet.runtime.rpc import Endpoint, is_listening


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


def test_the_emulated_device_listens_on_loopback_only():
    endpoint = Endpoint("127.0.0.1", free_port())
    server = device.start_server(endpoint)
    try:
        device.wait_until_serving(endpoint, server)
        deadline = time.monotonic() + 30
        while not is_listening(endpoint) and time.monotonic() < deadline:
            time.sleep(0.2)
        listening = [c.laddr.ip for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == endpoint.port]
    finally:
        device.stop_server(server)
    assert listening == ["127.0.0.1"]
