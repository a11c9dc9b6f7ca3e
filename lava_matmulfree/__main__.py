"""``python -m lava_matmulfree``: the same command line as ``lava-matmulfree``."""
import sys

from .cli import main

sys.exit(main())
