"""``python -m lava_matmulfree``: the same command line as ``lava-matmulfree``."""
import sys

from lava_matmulfree.cli import main

sys.exit(main())
