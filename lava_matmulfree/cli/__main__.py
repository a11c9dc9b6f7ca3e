"""`python -m lava_matmulfree.cli` runs the command line (as `lava-matmulfree` and `python -m lava_matmulfree` do)."""
import sys

from lava_matmulfree.cli import main

sys.exit(main())
