"""The NC models (processes/<name>/ncmodels.py) of the five custom neuron processes.

Without lava-loihi (this machine, and anyone with the public lava-nc wheel) each module imports cleanly,
defines no process model at all, and Lava's model discovery, which executes every module next to a
process.py, still finds only the Python models: compiling with Loihi2SimCfg picks them. With lava-loihi's
names present (simulated here by stand-ins, since the package is not public) each module defines one NC
model that carries its program and allocates it with the bound values.
"""
from __future__ import annotations

import importlib
import inspect
import types

import numpy as np
import pytest
from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
from lava.magma.core.model.model import AbstractProcessModel
from lava.magma.core.model.py.model import AbstractPyProcessModel
from lava.magma.core.run_configs import Loihi2SimCfg

from conftest import stub_lava_loihi
from lava_matmulfree.config import FixedPointConfig
from lava_matmulfree.microcode import PROGRAM_SUFFIX, bindings, load_program

NAMES = bindings.NEURON_PROGRAMS
LAYER = 1


def ncmodule(name: str):
    return importlib.import_module(f"lava_matmulfree.processes.{name}.ncmodels")

def _restore_nc_modules(monkeypatch):
    """Undo the stubbed lava-loihi and re-import the NC modules as this machine has them."""
    monkeypatch.undo()
    for name in NAMES:
        importlib.reload(ncmodule(name))



def process_models(module) -> list:
    return [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, AbstractProcessModel)]


@pytest.fixture(scope="module")
def tiny_net(tiny_cfg, _tiny_params_session):
    from lava_matmulfree.model.calibration import calibrate, random_calibration_sequences
    from lava_matmulfree.model.float_model import FloatModel
    from lava_matmulfree.model.quantise import compile_network

    fp = FixedPointConfig()
    fm = FloatModel(tiny_cfg, _tiny_params_session)
    return compile_network(fm, calibrate(fm, random_calibration_sequences(tiny_cfg.vocab_size), fp), fp)


@pytest.fixture
def no_lava_loihi():
    from lava.utils.loihi import is_installed

    if is_installed():
        pytest.skip("lava-loihi is installed here: the NC models are defined")


def make_process(name: str, net):
    """One instance of the process `name` on the tiny network."""
    from lava_matmulfree.processes import build

    if name == bindings.RMS_AGGREGATOR:
        return build.norm(net, net.cfg.hidden_size, "head")[1]
    if name == bindings.FINAL_NORM:
        return build.final_norm(net)
    return getattr(build, name)(net, LAYER)


# ================================================================================ without lava-loihi
@pytest.mark.parametrize("name", NAMES)
def test_ncmodel_imports_cleanly_and_defines_no_model(name, no_lava_loihi):
    module = ncmodule(name)
    assert module.NC_AVAILABLE is False
    assert process_models(module) == []
    assert module.UCODE.is_file() and module.UCODE.suffix == PROGRAM_SUFFIX and module.PROGRAM == name
    assert load_program(module.PROGRAM).static_count() > 0
    doc = module.__doc__
    for words in ("not public", "translated to Intel's microcode format", "is_installed()"):
        assert words in doc, words


def test_public_lava_without_nc_modules_defines_nothing(monkeypatch, no_lava_loihi):
    """Even where is_installed() says yes, a missing lava.magma.core.model.nc leaves every module empty."""
    import lava.utils.loihi

    monkeypatch.setattr(lava.utils.loihi, "is_installed", lambda *args, **kwargs: True)
    try:
        assert bindings.nc_support() is None
        for name in NAMES:
            module = importlib.reload(ncmodule(name))
            assert module.NC_AVAILABLE is False and process_models(module) == []
    finally:
        _restore_nc_modules(monkeypatch)


@pytest.mark.parametrize("name", NAMES)
def test_model_discovery_finds_only_python_models(name, tiny_net, no_lava_loihi):
    proc = make_process(name, tiny_net)
    found = ProcGroupDiGraphs._find_proc_models(proc)  # executes every module next to process.py
    assert found and all(issubclass(m, AbstractPyProcessModel) for m in found), found
    proc.compile(Loihi2SimCfg(select_tag="fixed_pt"))  # compiles only: no runtime is started
    assert proc.model_class.__module__ == f"lava_matmulfree.processes.{name}.models"


# ================================================================================ with lava-loihi's names
class _Recorder:
    """Stands in for lava-loihi's node groups and ports: records allocations and connections."""

    def __init__(self, log: list, label: str):
        self.log, self.label = log, label

    def allocate_ucode(self, **kwargs):
        self.log.append((self.label, kwargs))
        return _Recorder(self.log, f"{self.label}[ucode]")

    def allocate(self, **kwargs):
        self.log.append((self.label, kwargs))
        return _Recorder(self.log, f"{self.label}[{len(self.log)}]")

    def connect(self, other):
        self.log.append(("connect", self.label, other.label))


class _FakeNcModel:
    def __init__(self, proc_params):
        self.proc_params = proc_params


def _identity_decorator(*args, **kwargs):
    return lambda cls: cls


def fake_lava_loihi():
    return types.SimpleNamespace(
        implements=_identity_decorator, requires=_identity_decorator, tag=_identity_decorator,
        AbstractNcProcessModel=_FakeNcModel, NcInPort=object, NcOutPort=object, NcVar=object,
        LavaNcType=lambda *args, **kwargs: None, Loihi2NeuroCore=object, LoihiProtocol=object)


BINDERS = {bindings.RESIDUAL: lambda net: bindings.residual(net, LAYER),
           bindings.MLGRU: lambda net: bindings.mlgru(net, LAYER),
           bindings.GLU: lambda net: bindings.glu(net, LAYER),
           bindings.RMS_AGGREGATOR: bindings.rms_aggregator,
           bindings.FINAL_NORM: bindings.final_norm}


@pytest.mark.parametrize("name", NAMES)
def test_nc_model_carries_and_allocates_its_program(name, tiny_net, monkeypatch):
    monkeypatch.setattr(bindings, "nc_support", fake_lava_loihi)
    try:
        module = importlib.reload(ncmodule(name))
        assert module.NC_AVAILABLE is True
        (cls,) = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, _FakeNcModel)
                  and v is not _FakeNcModel]
        proc = make_process(name, tiny_net)
        model = cls(proc.proc_params)
        log: list = []
        for port in list(proc.in_ports.members) + list(proc.out_ports.members):
            setattr(model, port.name, _Recorder(log, port.name))
        for var in proc.vars.members:
            setattr(model, var.name, np.asarray(var.init))
        net = types.SimpleNamespace(neurons_cfg=_Recorder(log, "cfg"), neurons=_Recorder(log, "neurons"),
                                    ax_out=_Recorder(log, "ax_out"))
        model.allocate(net)
    finally:
        monkeypatch.undo()
        importlib.reload(ncmodule(name))
    binding = BINDERS[name](tiny_net)
    program = binding.assembled()
    (cfg,) = [entry[1] for entry in log if entry[0] == "cfg"]
    assert cfg["ucode"] == str(module.UCODE)
    assert all(cfg[k] == v for k, v in binding.imms.items())
    (neurons,) = [entry[1] for entry in log if entry[0] == "neurons"]
    assert neurons["shape"] == (binding.n,)
    assert set(neurons) == {"shape"} | set(binding.params) | set(program.state)
    axons = [entry[1] for entry in log if entry[0] == "ax_out"]
    assert [a["num_message_bits"] for a in axons] == [d.bits for d in program.out_ports.values()]
    connected = {entry[1] for entry in log if entry[0] == "connect"}
    assert {p.name for p in proc.in_ports.members} <= connected


# ================================================================================ the Loihi 2 run config


def test_loihi2_run_config_selects_the_nc_models_and_lavas_dense(tiny_net, monkeypatch):
    """Lava's own model selection for the loihi2 backend's run config, over the whole decomposed graph: every
    custom neuron gets its NC model, every connection is Lava's Dense (its NC model comes with lava-loihi; here
    its Python model stands in), the embedding source and the sampling sink stay on the host."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs, find_processes
    from lava.proc.dense.process import Dense

    from lava_matmulfree.graph.backends import loihi2_run_config
    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.processes.neuron import MicrocodedNeurons

    stub_lava_loihi(monkeypatch)
    try:
        for name in NAMES:
            assert importlib.reload(ncmodule(name)).NC_AVAILABLE
        graph = build_graph(tiny_net, "decomposed", capacity=4)
        ProcGroupDiGraphs(graph.source, loihi2_run_config())  # selects a model for every leaf
        leaves = [p for p in find_processes(graph.source) if p._model_class is not None]
        kinds = {}
        for p in leaves:
            kinds.setdefault(type(p).__name__, set()).add(p._model_class.__name__)
            if isinstance(p, MicrocodedNeurons):
                assert p._model_class.__module__.endswith(".ncmodels"), (p.name, p._model_class)
            elif isinstance(p, Dense):
                assert p._model_class.__module__.startswith("lava.proc.dense"), p._model_class
        assert {"Residual", "Mlgru", "Glu", "RmsAggregator", "FinalNorm", "Dense"} <= set(kinds)
        assert kinds["EmbeddingSource"] == {"PyEmbeddingSourceFixed"} and kinds["LmHeadSink"] == {"PyLmHeadSinkFixed"}
        assert len(leaves) == graph.leaf_process_count()
    finally:
        _restore_nc_modules(monkeypatch)


@pytest.mark.parametrize("name", NAMES)
def test_process_program_and_nc_model_declare_the_same_ports(name, tiny_net, monkeypatch):
    """The Process's ports are the program's inputs (without the token lanes) and outputs; the NC model
    declares the same ports and a type for every Var of the Process (it typed the probes' and the state it sends
    only, so the program's parameters allocate() binds had none); the program's lanes are one per input port."""
    from lava_matmulfree.processes.neuron import LANE_SUFFIX, program_ports

    program = load_program(name)
    proc = make_process(name, tiny_net)
    ins, outs = program_ports(program)
    assert sorted(p.name for p in proc.in_ports.members) == sorted(ins)
    assert sorted(p.name for p in proc.out_ports.members) == sorted(outs)
    lanes = [p for p in program.in_ports if p.endswith(LANE_SUFFIX)]
    assert lanes and all(p[:-len(LANE_SUFFIX)] in ins for p in lanes)
    monkeypatch.setattr(bindings, "nc_support", fake_lava_loihi)
    try:
        module = importlib.reload(ncmodule(name))
        (cls,) = [v for v in vars(module).values() if inspect.isclass(v) and issubclass(v, _FakeNcModel)
                  and v is not _FakeNcModel]
        declared = {k for k, v in vars(cls).items() if k in set(ins) | set(outs) or k.endswith(("_in", "_out"))}
        assert declared == set(ins) | set(outs), (declared, ins, outs)
        untyped = {v.name for v in proc.vars.members} - set(vars(cls))
        assert not untyped, untyped
    finally:
        monkeypatch.undo()
        importlib.reload(ncmodule(name))
