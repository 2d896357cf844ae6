"""`python -m tvm_mobilenet.bundle`: the same as `tvm-mobilenet bundle`."""

import sys

from tvm_mobilenet.cli.bundle import main

if __name__ == "__main__":
    sys.exit(main())
