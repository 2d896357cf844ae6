"""`python -m tvm_mobilenet.bench`: the same as `tvm-mobilenet bench`."""

import sys

from tvm_mobilenet.cli.bench import main

if __name__ == "__main__":
    sys.exit(main())
