"""`tvm-mobilenet device`: set up and serve the emulated aarch64 device (qemu-user + TVM RPC)."""

from __future__ import annotations

import signal
import sys

from tvm_mobilenet.cli.common import parser_for, port, run_cli
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.runtime.emulated_device import (
    setup,
    start_server,
    stop_server,
    wait_until_serving,
)
from tvm_mobilenet.runtime.rpc import (
    EMULATED_LABEL,
    Endpoint,
    parse_address,
)


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("device", "An emulated aarch64 device: arm64 CPython + TVM under "
                        "qemu-user running "
                    "TVM's RPC server on 127.0.0.1. Correct for numerics; its timings are "
                    f"{EMULATED_LABEL}.")
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser(
        "setup", help="unpack arm64 CPython and TVM's aarch64 wheels (once; cached)")
    setup_parser.add_argument("--force", action="store_true", help="set up again from scratch")
    emulate = commands.add_parser(
        "emulate", help="serve TVM RPC from the emulated device until Ctrl-C")
    where = emulate.add_mutually_exclusive_group(required=True)
    where.add_argument("--tracker", metavar="HOST:PORT",
                       help="register with this RPC tracker (needs --key)")
    where.add_argument("--port", type=port, help="listen for direct connections on this port")
    emulate.add_argument("--key", help="tracker key to register under, e.g. rpi4")
    args = parser.parse_args(argv)

    def run() -> None:
        if args.command == "setup":
            setup(force=args.force)
            return
        if args.key and not args.tracker:
            raise UserError("--key names the device at a tracker: give --tracker too")
        if args.tracker and not args.key:
            raise UserError("--tracker needs --key (the key clients ask for, e.g. rpi4)")
        endpoint = (Endpoint(*parse_address(args.tracker), key=args.key) if args.tracker
                    else Endpoint("127.0.0.1", args.port))
        process = start_server(endpoint)
        # Stopped with SIGTERM too, the server (in its own process group) goes with us.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        try:
            wait_until_serving(endpoint, process)
            print(f"emulated aarch64 device serving {endpoint} ({EMULATED_LABEL}); "
                  "Ctrl-C stops it", flush=True)
            process.wait()
            raise UserError(f"the emulated device exited with code {process.returncode}")
        finally:
            stop_server(process)

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
