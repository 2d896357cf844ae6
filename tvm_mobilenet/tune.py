"""`python -m tvm_mobilenet.tune`: the same as `tvm-mobilenet tune`."""

import sys

from tvm_mobilenet.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
