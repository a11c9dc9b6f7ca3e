"""Lava processes of the MatMul-free LM (installed as lava_matmulfree.processes)."""


def float_model_of(proc_params, what: str):
    """The folded float model a floating_pt model computes with, or one clear error naming ``what``."""
    from lava_matmulfree.errors import BackendError

    fm = proc_params.get("float_model")
    if fm is None:
        raise BackendError(f"the floating_pt {what} needs the float model: build the graph with float_model=")
    return fm
