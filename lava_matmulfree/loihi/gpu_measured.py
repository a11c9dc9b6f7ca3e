"""The GPU measured here (docs/gpu_baselines.md, section 1): Transformer++ 370M at batch 1 on an NVIDIA H200,
prompt passes and decode in three runtimes, with NVML's board energy (``data/gpu_h200.json``, copied by hand from
the measurement with its protocol). The GPU model's two H200 constants are fitted on some of its cells
(:mod:`.calibration`); the verdict sets Loihi 2 against the measured cells themselves (:mod:`.verdict`)."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from lava_matmulfree.config import DATA_DIR
from lava_matmulfree.loihi.hardware import CostModelError

MEASURED_FILE = DATA_DIR / "gpu_h200.json"
MEASURED_GPU = "h200"
MEASURED_MODEL = "transformer++"


@lru_cache(maxsize=1)
def measured_h200() -> dict[str, Any]:
    """The measurement file: ``source`` (GPU, software, protocol), ``cells`` (phase, runtime, tokens or context,
    batch, tokens_per_s, mj_per_token), the idle power, and which cells the fit takes and which a test leaves out."""
    try:
        return json.loads(MEASURED_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CostModelError(f"{MEASURED_FILE}: the H200 measurement cannot be read ({e})") from None


def measured_cell(phase: str, runtime: str, length: int) -> dict[str, Any] | None:
    """The measured cell of ``phase`` and ``runtime`` nearest ``length`` (prompt tokens or decode context), at
    batch 1; None where that runtime measured no such phase."""
    key = "tokens" if phase == "prefill" else "context"
    cells = [c for c in measured_h200()["cells"]
             if c["phase"] == phase and c["runtime"] == runtime and c.get("batch", 1) == 1]
    return min(cells, key=lambda c: abs(c[key] - length), default=None)
