"""``info``: the Lava process graph of a model (nothing runs; docs/graph.md). The table comes from the graph's
shape alone (graph.builder.leaf_processes, loop_depth); the ports and variables of a block from one block built
for a one-layer stand-in of the same widths: no weights of the model itself are made, read or calibrated, so
``info --config 370m`` costs what ``info --config tiny`` does."""
from __future__ import annotations

import dataclasses
import json

from lava_matmulfree.cli.arguments import _add_model_command
from lava_matmulfree.cli.common import DEFAULT_CONFIG, _checkpoint_arg

INFO_CALIB_SEQUENCES = 1  # the stand-in only needs a network of the right widths, not good formats
INFO_CALIB_LENGTH = 4
INFO_BACKENDS = ("sim", "sim-mixers", "sim-fused", "sim-stack")  # one table row each
STAND_IN_VOCAB = 4  # a block's ports and variables do not depend on the vocabulary
NAMED_LAYERS = 8  # deeper models show their first two blocks, "...", and the last
MAPPING_MAX_LAYERS = 512  # the Loihi 2 mapping of more layers would take info minutes (see cmd_info)


def add_parser(sub):
    _add_model_command(sub, "info", cmd_info, None, help="the Lava process graph of a model",
                       description="Print a model's processes, a block's ports and variables, time steps per token "
                                   "per layer and the decode loop depth on each CPU backend, and the Loihi 2 mapping. "
                                   "Nothing runs, and no weights are built: this reads only the model's config.")


def _describe_ports(proc) -> list:
    def fmt(members):
        return ", ".join(f"{v.name}{list(v.shape)}" for v in members) or "-"

    return [f"  in ports:  {fmt(proc.in_ports.members)}", f"  out ports: {fmt(proc.out_ports.members)}",
            f"  vars:      {fmt(proc.vars.members)}"]


def _config(args):
    """(ModelConfig, description) of --checkpoint / --model / --config, from the config alone."""
    from lava_matmulfree.config import ModelConfig, load_model_config
    from lava_matmulfree.errors import CheckpointError

    ckpt = _checkpoint_arg(args)
    if ckpt is None:
        cfg = load_model_config(args.config or DEFAULT_CONFIG)
        return cfg, f"config {cfg.name!r}"
    if ckpt.is_file():  # a compiled network: its config is in the header's meta
        from safetensors import safe_open

        try:
            with safe_open(str(ckpt), framework="numpy") as f:
                meta = json.loads((f.metadata() or {})["meta"])
            cfg = ModelConfig(**meta["cfg"])
        except Exception as e:  # unreadable file, no meta, a meta without a valid cfg
            raise CheckpointError(f"{ckpt}: not a compiled network with a readable model config ({e})") from None
        bad = cfg._check()
        if bad:
            raise CheckpointError(f"{ckpt}: meta cfg.{bad[0][0]} {bad[0][1]}")
        return cfg, f"compiled network {ckpt}"
    from lava_matmulfree.io.checkpoint import read_config_json

    return read_config_json(ckpt), f"checkpoint {ckpt}"


def _stand_in(cfg):
    """A compiled network of one layer with ``cfg``'s widths (seeded random weights, a tiny vocabulary)."""
    from lava_matmulfree.config import FixedPointConfig
    from lava_matmulfree.io.params import random_params
    from lava_matmulfree.model.calibration import calibrate, random_calibration_sequences
    from lava_matmulfree.model.float_model import FloatModel
    from lava_matmulfree.model.quantise import compile_network

    small = dataclasses.replace(cfg, num_layers=1, vocab_size=STAND_IN_VOCAB, bos_token_id=-1, eos_token_id=-1)
    model = FloatModel(small, random_params(small, seed=0))
    seqs = random_calibration_sequences(small.vocab_size, INFO_CALIB_SEQUENCES, INFO_CALIB_LENGTH)
    fp = FixedPointConfig()
    return compile_network(model, calibrate(model, seqs, fp), fp)


def cmd_info(args) -> int:
    from lava_matmulfree.graph.backends import GRAPH_KIND
    from lava_matmulfree.graph.builder import BLOCK_TIMING, STREAM_TAPS, build_graph, leaf_processes, loop_depth

    from lava_matmulfree.errors import LmfError
    from lava_matmulfree.utils.limits import SizeError

    c, what = _config(args)
    print(f"model: {what} (read from its config: no weights are built)")
    print(f"  {c.num_layers} layers, hidden {c.hidden_size}, intermediate {c.intermediate_size}, "
          f"vocabulary {c.vocab_size}")
    print(f"{'backend':<11}{'leaf processes':>16}{'steps/token/layer':>19}{'decode loop depth':>19}")
    for backend in INFO_BACKENDS:
        kind = GRAPH_KIND[backend]
        print(f"{backend:<11}{leaf_processes(kind, c.num_layers, extra=STREAM_TAPS):>16}{BLOCK_TIMING[kind][0]:>19}"
              f"{loop_depth(kind, c.num_layers):>19}")
    print(f"(leaf processes as generate and chat run them, with the {STREAM_TAPS} token tap that streams their "
          "tokens; probe adds one per probe instead)")
    try:
        net = _stand_in(c)
    except SizeError as e:  # a layer too wide to build here: the table above is what info can tell
        print(f"block 0: not built ({e})")
        net = None
    if net is not None:
        graph = build_graph(net, GRAPH_KIND[INFO_BACKENDS[0]], capacity=2)
        block = graph.blocks[0]
        L = c.num_layers
        shown = range(L) if L <= NAMED_LAYERS else [0, 1, None, L - 1]  # None: the layers between
        names = [f"{block.name[:-1]}{l}" if l is not None else "..." for l in shown]  # block0 ... block{L-1}
        top = [graph.source.name, *names, graph.head.name, graph.sink.name]
        print("processes: " + " -> ".join(top) + f" (-> {graph.source.name}: the sampled token)")
        print(f"block 0 ({type(block).__name__}):")
        print("\n".join(_describe_ports(block)))
    try:
        from lava_matmulfree.loihi.mapping import build_mapping
    except ImportError:
        return 0
    if c.num_layers > MAPPING_MAX_LAYERS:
        print(f"Loihi 2 mapping: not computed for {c.num_layers} layers (the cost model's mapping takes time "
              f"growing with the square of the layers: 300 took 0.9 s, 3000 took 288 s; `estimate` maps any size)")
        return 0
    try:
        mp = build_mapping(c)
    except (ValueError, LmfError) as e:  # a shape the cost model does not model (e.g. an aggregator's fan-in)
        print(f"Loihi 2 mapping: not modelled ({e})")
        return 0
    print(f"Loihi 2 mapping (cost model, this project's mapping: `estimate --preset project`): {mp.cores} cores on "
          f"{mp.chips} chip(s)")
    return 0
