"""What Lava's forked workers hold is shared with the building process where it can be (docs/graph.md, "Memory"):

* every fork happens with the garbage collector frozen, in the child only (graph/runtime.py), so a worker's
  collections never copy the parent's objects;
* Lava's compiler does not import pandas (and pyarrow) through networkx's DataFrame test; networkx converts as
  before, DataFrames included once pandas is imported;
* the embedding source reads the builder's table (a process parameter, not a Var Lava's builder copies);
* the packed model of Dense holds the given weights array itself where it computes with those weights, and a
  ``set`` of its weights Var still holds any weight Lava's Dense keeps;
* benchmarks/bench_memory_by_process.py runs on the tiny config.
Every test that starts a Lava runtime has a hard timeout."""
from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lava_matmulfree.graph import runtime  # noqa: F401  (installs the fork hook and the import finder)
from lava_matmulfree.processes.connections import PyTernaryDenseModel, ternary_connection
from lava_matmulfree.processes.embedding.process import EmbeddingSource

ROOT = Path(__file__).resolve().parent.parent


def fork_and_report(code) -> str:
    """Fork; the child runs ``code()`` and writes its result (a str) back; the parent returns it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, str(code()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


@pytest.mark.timeout(60)
def test_a_fork_freezes_the_collector_in_the_child_only():
    assert gc.get_freeze_count() == 0
    held = [object() for _ in range(10)]  # noqa: F841  (tracked objects exist)
    assert int(fork_and_report(gc.get_freeze_count)) > 0
    assert gc.get_freeze_count() == 0  # the parent collects its objects as before
    gc.freeze()  # a caller's own freeze is left as it is
    try:
        frozen = gc.get_freeze_count()
        assert int(fork_and_report(gc.get_freeze_count)) > 0
        assert gc.get_freeze_count() > frozen // 2  # not undone by the hook (a frozen object may be freed)
    finally:
        gc.unfreeze()


@pytest.mark.timeout(120)
def test_lava_compile_does_not_import_pandas_and_networkx_still_converts():
    pytest.importorskip("pandas")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        import lava_matmulfree.graph.runtime
        from lava_matmulfree.processes.connections import ternary_connection

        src, sink = Source(data=np.zeros((3, 2))), Sink(shape=(3,), buffer=2)
        conn = ternary_connection(np.eye(2, dtype=np.int8))
        src.s_out.connect(conn.s_in)
        conn.a_out.connect(sink.a_in)
        sink.compile(Loihi2SimCfg(select_tag="fixed_pt"))  # Lava's compiler: networkx graphs of the processes
        assert "pandas" not in sys.modules and "pyarrow" not in sys.modules
        import networkx as nx
        import pandas as pd
        assert sorted(nx.DiGraph(nx.DiGraph([(1, 2), (2, 3)]).edges()).edges()) == [(1, 2), (2, 3)]
        adj = pd.DataFrame([[0, 1], [0, 0]], index=["a", "b"], columns=["a", "b"])
        assert list(nx.DiGraph(adj).edges()) == [("a", "b")]  # networkx's DataFrame input, pandas imported
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_embedding_source_holds_the_builders_table_not_a_copy():
    table = np.arange(12, dtype=np.int32).reshape(4, 3)
    src = EmbeddingSource(embed=table, capacity=4, prompt=[1, 2], max_new_tokens=1)
    assert src.proc_params["embed"] is table
    assert "embed" not in {v.name for v in src.vars}  # no Var: Lava's builder would copy it into the worker
    with pytest.raises(ValueError, match="2-D"):
        EmbeddingSource(embed=np.zeros(5, dtype=np.int32), capacity=2)


def test_the_packed_dense_model_holds_the_given_weights_where_it_computes_with_them():
    w = np.array([[1, 0, -1], [0, 1, 1]], dtype=np.int8)
    dense = ternary_connection(w, name="t")
    m = PyTernaryDenseModel(dense.proc_params)
    m.weights = np.array(dense.weights.init, dtype=np.int16)  # what Lava's builder makes of the Var
    m._prepare()
    assert m.weights is dense.proc_params["weights"] and m._kernel  # the building process's array, shared
    # weights Lava's model truncates (odd, mixed signs): the model's own int16 weights, as Lava's model computes
    odd = ternary_connection(w, name="odd")
    odd.proc_params.overwrite("weights", np.asarray(odd.weights.init) // 2)
    m = PyTernaryDenseModel(odd.proc_params)
    m.weights = np.array(odd.proc_params["weights"], dtype=np.int16)
    m._prepare()
    assert m.weights.dtype == np.int16 and m.weights is not odd.proc_params["weights"]


@pytest.mark.lava
@pytest.mark.timeout(240)
def test_the_packed_dense_models_weights_var_reads_and_sets_through_lava():
    """get() of a ternary connection's weights under the packed model gives 2W (lane included); a set() of a
    weight beyond int8 (the shared array's type) holds it: the Var is widened to its int16 first."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    w = np.array([[1, 0, -1], [0, 1, 1]], dtype=np.int8)
    conn = ternary_connection(w)
    src, sink = Source(data=np.ones((4, 3), dtype=np.int64)), Sink(shape=(3,), buffer=3)
    src.s_out.connect(conn.s_in)
    conn.a_out.connect(sink.a_in)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Dense: PyTernaryDenseModel})
    try:
        sink.run(condition=RunSteps(num_steps=2), run_cfg=cfg)
        np.testing.assert_array_equal(np.asarray(conn.weights.get()), np.asarray(conn.weights.init))
        new = np.asarray(conn.weights.init).astype(np.int64)
        new[0, 0] = 200
        conn.weights.set(new)
        np.testing.assert_array_equal(np.asarray(conn.weights.get()), new)
    finally:
        sink.stop()


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_memory_by_process_runs_on_tiny(tmp_path):
    """The benchmark's two workers on the tiny config: every process of the Lava run read, the golden process
    read the same way, and a full collection in a forked child copies (almost) nothing with the fork hook."""
    bench = ROOT / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("bench_memory_by_process", bench / "bench_memory_by_process.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out = tmp_path / "mem.json"
        assert mod.main(["--config", "tiny", "--prompt", "4", "--tokens", "2", "--net", str(tmp_path / "net.st"),
                         "--out", str(out)]) == 0
    finally:
        sys.path.remove(str(bench))
    res = json.loads(out.read_text())
    procs = res["lava"]["processes"]
    assert procs[0]["model"] == "parent" and sum(p["model"] == "PyFusedBlockFixed" for p in procs) == 3
    assert all(p.get("Pss", 0) > 0 for p in procs) and res["golden"]["after"]["Pss"] > 0
    cost = res["lava"]["fork_gc_mib"]
    assert cost["frozen"] < 2.0 < cost["not_frozen"]
