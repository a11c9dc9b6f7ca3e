"""Ternary synapses: a connection whose weights are in {-1, 0, +1}.

Dynamics (per time step, no delay: on Loihi 2 the accumulation belongs to the receiving neuron's step):

    acc_out[i] = sum_j weights[i, j] * a_in[j]          (graded int8 spikes in, integer sums out)
    acc_out[i] = scale * sum_j weights[i, j] * a_in[j]  (floating_pt: scale = 1/s, the matrix's absmean scale;
                                                         fixed_pt folds it into the next requantisation)

|acc| <= n_in * 128 is checked at compile time to fit the 24-bit dendritic accumulator.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

DENSE_BITS_PER_WEIGHT = 2  # a ternary weight in the dense encoding


class TernarySynapses(AbstractProcess):
    def __init__(self, *, weights: np.ndarray, scale: float = 1.0, name: str | None = None, **kwargs):
        w = np.asarray(weights)
        if w.ndim != 2 or not np.isin(w, (-1, 0, 1)).all():
            raise ValueError("TernarySynapses: weights must be a 2-D array of -1, 0, +1")
        super().__init__(weights=w, scale=float(scale), name=name, **kwargs)
        n_out, n_in = w.shape
        self.a_in = InPort(shape=(n_in,))
        self.acc_out = OutPort(shape=(n_out,))
        self.weights = Var(shape=w.shape, init=w.astype(np.int8))

    def memory_bits(self, index_bits: int, value_bits: int = DENSE_BITS_PER_WEIGHT) -> dict:
        """Synapse memory in the dense (2 bits per weight) and sparse (index + value per non-zero) encodings."""
        w = self.proc_params["weights"]
        nnz = int(np.count_nonzero(w))
        return {"dense": w.size * DENSE_BITS_PER_WEIGHT, "sparse": nnz * (index_bits + value_bits),
                "nonzero": nnz, "size": int(w.size)}
