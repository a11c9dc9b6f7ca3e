"""Loihi 2 mapping and cost model of the MatMul-free LM, and the GPU baselines it is compared with
(docs/cost_model.md)."""
