"""Lava processes of the MatMul-free LM (installed as lava_matmulfree.processes)."""
