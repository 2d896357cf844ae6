"""`python -m tvm_mobilenet.build`: the same as `tvm-mobilenet build`."""

import sys

from tvm_mobilenet.cli.build import main

if __name__ == "__main__":
    sys.exit(main())
