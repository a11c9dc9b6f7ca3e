"""lava-matmulfree: a MatMul-free language model as a Lava process graph for Loihi 2."""

__version__ = "0.1.0"
