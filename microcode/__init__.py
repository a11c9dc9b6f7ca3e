"""Neuron programs (microcode) of the MatMul-free LM."""
