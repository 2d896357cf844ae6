"""`python -m tvm_mobilenet.models`: the same as `tvm-mobilenet models`."""

import sys

from tvm_mobilenet.cli.models import main

sys.exit(main())
