"""`python -m tvm_mobilenet.verify`: the same as `tvm-mobilenet verify`."""

import sys

from tvm_mobilenet.cli.verify import main

if __name__ == "__main__":
    sys.exit(main())
