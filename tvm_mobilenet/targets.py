"""`python -m tvm_mobilenet.targets`: the same as `tvm-mobilenet targets`."""

import sys

from tvm_mobilenet.cli.targets import main

if __name__ == "__main__":
    sys.exit(main())
