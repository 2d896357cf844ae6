"""`python -m tvm_mobilenet.profile`: the same as `tvm-mobilenet profile`."""

import sys

from tvm_mobilenet.cli.profile import main

if __name__ == "__main__":
    sys.exit(main())
