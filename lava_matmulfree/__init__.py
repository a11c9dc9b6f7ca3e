"""lava-matmulfree: a MatMul-free language model as a Lava process graph for Loihi 2.

The names a user imports are re-exported here (docs/api.md); each is loaded on first use, so importing the
package costs nothing. The parts of the package and which uses which: docs/architecture.md.
"""
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

from lava_matmulfree.utils.lazy import lazy_exports

__version__ = "0.1.0"


def _one_tree() -> None:
    """``processes/`` and ``microcode/`` become subpackages through the install (pyproject's package-dir), not
    through this folder: a second checkout put first on PYTHONPATH brought its own ``lava_matmulfree/`` and the
    installed checkout's processes and microcode, mixed without a word. A source checkout takes its own folders
    (loaded here, so that their modules are found in them); anything else is refused (docs/architecture.md, "The
    repository")."""
    here = Path(__file__).resolve().parent
    for sub in ("processes", "microcode"):
        spec = importlib.util.find_spec(f"{__name__}.{sub}")
        found = Path(spec.origin).resolve().parent if spec is not None and spec.origin else None
        if found is not None and found.parent in (here, here.parent):  # in the package, or its checkout's top level
            continue
        own = importlib.machinery.PathFinder.find_spec(f"{__name__}.{sub}", [str(here.parent)])
        if own is None or not (here.parent / "pyproject.toml").is_file():
            raise ImportError(f"{__name__} comes from {here}, but {__name__}.{sub} from {found}, and this "
                              "folder is no checkout that holds its own: install one of them")
        _CheckoutFolders.names[own.name] = str(here.parent)
    if _CheckoutFolders.names and _CheckoutFolders not in sys.meta_path:
        sys.meta_path.insert(0, _CheckoutFolders)  # imported when first used, as the installed ones are


class _CheckoutFolders:
    """Finds the subpackages :func:`_one_tree` named in this checkout's top-level folders (before the installed
    checkout's finder, which would map them to its own)."""

    names: dict[str, str] = {}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        root = cls.names.get(name)
        return None if root is None else importlib.machinery.PathFinder.find_spec(name, [root])


_one_tree()

_M = "lava_matmulfree."
API = {
    # configs (lava_matmulfree/configs/*.toml)
    "load_config": _M + "config", "ModelConfig": _M + "config", "FixedPointConfig": _M + "config",
    "RunConfig": _M + "config",
    # checkpoints and tokenizers
    "load_checkpoint": _M + "io.checkpoint", "save_checkpoint": _M + "io.checkpoint",
    "resolve_checkpoint": _M + "io.checkpoint", "random_params": _M + "io.params",
    "load_tokenizer": _M + "io.tokenizer",
    # the model: float reference, calibration, compiled integers, golden models
    "FloatModel": _M + "model.float_model", "calibrate": _M + "model.calibration",
    "compile_network": _M + "model.quantise", "QuantisedNetwork": _M + "model.quantise",
    "GoldenModel": _M + "model.golden", "FastGoldenModel": _M + "model.golden_fast",
    "Sampler": _M + "model.sampling",
    "build_evaluation": _M + "evaluation.accuracy", "evaluate": _M + "evaluation.accuracy",
    # the Lava graph and its runtime
    "build_graph": _M + "graph.builder", "LavaGraph": _M + "graph.builder", "GraphRunner": _M + "graph.runner",
    "run_graph": _M + "graph.runner", "Session": _M + "graph.session", "generate": _M + "graph.backends",
    "Generation": _M + "graph.backends", "lava_run_config": _M + "graph.backends",
    "loihi2_run_config": _M + "graph.backends",
    # the Loihi 2 mapping and cost model
    "estimate": _M + "loihi", "build_report": _M + "loihi", "build_mapping": _M + "loihi",
    "LoihiCostModel": _M + "loihi",
}
__all__ = ["__version__", *API]
__getattr__, __dir__ = lazy_exports(__name__, API)
