"""`python -m tvm_mobilenet.device`: the same as `tvm-mobilenet device`."""

import sys

from tvm_mobilenet.cli.device import main

if __name__ == "__main__":
    sys.exit(main())
