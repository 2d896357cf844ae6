"""`python -m tvm_mobilenet <verb>`, the same as `tvm-mobilenet <verb>`."""

import sys

from tvm_mobilenet.cli.main import main

sys.exit(main())
