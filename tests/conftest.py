"""Shared fixtures: the tiny config, its seeded random weights and a checkpoint folder written from them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lava_matmulfree.io.checkpoint import save_checkpoint
from lava_matmulfree.config import ModelConfig, load_config
from lava_matmulfree.io.params import random_params

PARAMS_SEED = 1234


@pytest.fixture(scope="session")
def tiny_cfg() -> ModelConfig:
    """lava_matmulfree/configs/tiny.toml: 3 layers, d=72, I=200, the 259-token byte vocabulary."""
    return load_config("tiny").model


@pytest.fixture(scope="session")
def _tiny_params_session(tiny_cfg) -> dict[str, np.ndarray]:
    return random_params(tiny_cfg, seed=PARAMS_SEED)


@pytest.fixture
def tiny_params(_tiny_params_session) -> dict[str, np.ndarray]:
    """Seeded random float32 weights of the tiny config (a fresh copy per test, so tests may modify it)."""
    return {k: v.copy() for k, v in _tiny_params_session.items()}


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_cfg, tiny_params):
    """A float32 single-file Hugging Face checkpoint folder of the tiny model."""
    folder = tmp_path / "tiny-ckpt"
    save_checkpoint(folder, tiny_cfg, tiny_params)
    return folder


def float_generation(model, prompt, max_new_tokens: int, sampler, eos_token_id=None) -> list:
    """The tokens a float model generates, assembled in the tests from its prefill and step (an oracle that
    does not go through the backends it checks)."""
    from lava_matmulfree.model.sampling import generate

    state = {}

    def prefill(toks):
        logits, state["s"] = model.prefill(toks)
        return logits[-1]

    def step(tok):
        logits, state["s"] = model.step(tok, state["s"])
        return logits

    return generate(step, prefill, prompt, max_new_tokens, sampler, eos_token_id=eos_token_id)


def stub_lava_loihi(monkeypatch):
    """Make lava-loihi's few names importable (the package is not public): one NC model base, which lava's
    run_configs also uses to recognise NC models (it defines a placeholder when lava-loihi is absent), and
    CLoihiProcessModel, the one name run_configs leaves undefined."""
    import sys
    import types

    import lava.magma.core.run_configs as run_configs
    import lava.utils.loihi
    from lava.magma.core.model.model import AbstractProcessModel

    class CLoihiProcessModel:
        pass

    class AbstractNcProcessModel(AbstractProcessModel):  # lava-loihi's base, as far as selection needs it
        pass

    monkeypatch.setattr(run_configs, "AbstractNcProcessModel", AbstractNcProcessModel)
    mods = {"lava.magma.core.model.nc": types.ModuleType("lava.magma.core.model.nc"),
            "lava.magma.core.model.nc.model": types.SimpleNamespace(AbstractNcProcessModel=AbstractNcProcessModel),
            "lava.magma.core.model.nc.ports": types.SimpleNamespace(NcInPort=type("NcInPort", (), {}),
                                                                    NcOutPort=type("NcOutPort", (), {})),
            "lava.magma.core.model.nc.type": types.SimpleNamespace(LavaNcType=lambda *a, **k: ("nc", a, k)),
            "lava.magma.core.model.nc.var": types.SimpleNamespace(NcVar=type("NcVar", (), {}))}
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(lava.utils.loihi, "is_installed", lambda *a, **k: True)
    monkeypatch.setattr(run_configs, "CLoihiProcessModel", CLoihiProcessModel, raising=False)


def fails(argv, capsys, *culprits) -> str:
    """Run the CLI; it must exit 2 after exactly one `error:` line naming every culprit."""
    from lava_matmulfree.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for c in culprits:
        assert str(c) in lines[0], lines[0]
    return lines[0]


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
