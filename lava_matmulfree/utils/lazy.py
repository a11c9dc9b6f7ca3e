"""Re-exports that import their module on first use (PEP 562), so that ``import lava_matmulfree`` stays light
(no Lava, numba or matplotlib until a name that needs them is touched; docs/api.md)."""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``(__getattr__, __dir__)`` for a package whose public ``name`` lives in module ``exports[name]``."""

    def __getattr__(name: str):
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
