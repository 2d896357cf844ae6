"""`python -m tvm_mobilenet.classify`: the same as `tvm-mobilenet classify`."""

import sys

from tvm_mobilenet.cli.classify import main

if __name__ == "__main__":
    sys.exit(main())
