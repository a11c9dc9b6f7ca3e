"""Lava's profiler interface on the simulator: an activity-based Loihi 2 *estimate* (docs/activity.md, "Lava's
profiler").

``lava.utils.profiler.Profiler.init(run_cfg)`` picks a profiler by the run config's type; lava-loihi registers
its hardware profiler (``Loihi2HWProfiler``) for ``Loihi2HwCfg``. :func:`register` adds
:class:`Loihi2SimProfiler` for ``Loihi2SimCfg``, the run config of every simulated backend
(:func:`~.backends.lava_run_config`), so a Lava user asks for execution time and energy as on the chip::

    import lava_matmulfree.graph.profiler            # registers Loihi2SimProfiler for Loihi2SimCfg
    from lava.utils.profiler import Profiler
    profiler = Profiler.init(run_cfg)                 # run_cfg = lava_run_config("sim")
    profiler.workload(net, activity="activity.json", prompt_tokens=8)   # what the chip would run
    profiler.execution_time_probe(num_steps=100)
    profiler.energy_probe(num_steps=100)
    ... run the graph ...
    profiler.execution_time                           # seconds per step (an estimate), as on hardware
    profiler.energy                                   # joules (an estimate)

The method and attribute names are the hardware profiler's where its users call them (``execution_time_probe``,
``energy_probe``, ``activity_probe``, ``memory_probe``, ``execution_time``, ``energy``). Nothing is measured:
every value comes from :mod:`lava_matmulfree.loihi` (the mapping, its cost model and the measured activity
profile), for the chip's schedule of the request given to :meth:`Loihi2SimProfiler.workload`: one step per
hop of the mapping (its pipeline adds the host's injection to the graph's ``12 L + 3`` steps per token).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lava_matmulfree.config import ModelConfig, load_config
from lava_matmulfree.loihi.activity import activity_label, default_activity, resolve_activity
from lava_matmulfree.loihi.calibration import calibrate
from lava_matmulfree.loihi.cost_model import LoihiCostModel, resolve_instruction_counts
from lava_matmulfree.loihi.hardware import load_hardware
from lava_matmulfree.loihi.presets import loihi_model, preset

ESTIMATE = "estimate: lava_matmulfree.loihi cost model with a measured activity profile (docs/activity.md)"


def chip_schedule(cm: LoihiCostModel, prompt_tokens: int, new_tokens: int, steps: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, joules) per chip step of one request: the prompt streams in one token per step (the first
    generated token leaves with the last prompt token), then each further token crosses the D hops one after
    another; each generated token adds the output over the host link and the host's round trip to its last
    step. So the steps sum to TTFT + (N - 1) x the generated token's time of the cost model (docs/cost_model.md).
    A step's energy: the system's static power for its time, plus the dynamic energy of each token that enters
    in it. With ``steps``, the schedule is cut there or filled with idle steps (the barrier only)."""
    T, N = int(prompt_tokens), int(new_tokens)
    if T < 1 or N < 0:
        raise ValueError(f"prompt_tokens must be >= 1 and new_tokens >= 0, got {T}, {N}")
    D = cm.pipeline_depth
    host = cm.readout_s + cm.hw.host_round_trip_s
    prefill = cm.step_times(T).copy()
    if N:
        prefill[-1] += host  # the first generated token's output and the host's answer (TTFT)
    token = np.array([c.latency_s + cm.barrier_s for c in cm.hop_costs])
    token[-1] += host
    times = np.concatenate([prefill] + [token] * max(0, N - 1))
    entering = np.zeros(len(times))
    entering[:T] = 1.0  # prompt tokens, one a step
    entering[len(prefill) + D * np.arange(max(0, N - 1))] = 1.0  # each further generated token
    if steps is not None:
        pad = max(0, int(steps) - len(times))
        times = np.concatenate([times, np.full(pad, cm.barrier_s)])[:int(steps)]
        entering = np.concatenate([entering, np.zeros(pad)])[:int(steps)]
    energy = cm.static_power_w * times + cm.dynamic_energy_per_token_j * entering
    return times, energy


class Loihi2SimProfiler:
    """The profiler ``Profiler.init`` returns for a ``Loihi2SimCfg``: estimates, never measurements."""

    is_estimate = True

    def __init__(self, run_cfg):
        self.run_cfg = run_cfg
        self.cost_model: LoihiCostModel | None = None
        self.activity_label: str | None = None  # what the estimate's activity rests on (set by workload)
        self.request = (1, 1)
        self._window: tuple[int, int, int] | None = None
        self._energy_steps: int | None = None
        self._activity = self._memory = False
        self.source = ESTIMATE

    # ---- what the chip would run
    def workload(self, model, *, activity: Any = "auto", preset_name: str = "project", prompt_tokens: int = 1,
                 new_tokens: int = 1, **options) -> "Loihi2SimProfiler":
        """The model the run executes (a QuantisedNetwork, a ModelConfig or a config name), its activity
        profile (a file, 'dense', or 'auto': a shipped model's measured profile, else dense), the deployment
        (``preset_name``: 'project' puts the head on chip as the graph does) and the request."""
        cfg = getattr(model, "cfg", model)
        if not isinstance(cfg, ModelConfig):
            cfg = load_config(cfg).model
        if isinstance(activity, str) and activity == "auto":
            prof, _, headline = default_activity(cfg)
            activity = prof if headline else None
        ins, _ = resolve_instruction_counts()
        specs = load_hardware(None)
        hw, _, _ = calibrate(load_config("370m").model, specs["loihi2"], specs["jetson"], ins)  # as the report
        hw, opts = preset(preset_name, hw)
        opts = dataclasses.replace(opts, activity=resolve_activity(activity), **options)
        self.cost_model = loihi_model(cfg, hw, opts, ins)
        self.activity_label = activity_label(opts.activity, cfg, opts.act_bits)
        self.request = (int(prompt_tokens), int(new_tokens))
        return self

    # ---- the hardware profiler's probes
    def execution_time_probe(self, num_steps: int, t_start: int = 1, t_end: int | None = None, dt: int = 1,
                             buffer_size: int = 1024) -> None:
        self._window = (int(t_start), int(t_end if t_end is not None else num_steps), int(dt))

    def energy_probe(self, num_steps: int) -> None:
        self._energy_steps = int(num_steps)

    def activity_probe(self) -> None:
        self._activity = True

    def memory_probe(self) -> None:
        self._memory = True

    # ---- results (estimates)
    def _schedule(self, steps: int | None) -> tuple[np.ndarray, np.ndarray]:
        if self.cost_model is None:
            raise RuntimeError("Loihi2SimProfiler estimates the chip: call profiler.workload(net, ...) first "
                               "(docs/activity.md)")
        return chip_schedule(self.cost_model, *self.request, steps=steps)

    @property
    def execution_time(self) -> np.ndarray:
        """Seconds per step of the chip's schedule, steps t_start..t_end every dt (1-based, as on hardware);
        steps after the request are idle (the barrier only)."""
        if self._window is None:
            raise RuntimeError("call execution_time_probe(num_steps) before the run")
        a, b, dt = self._window
        times, _ = self._schedule(b)
        return times[a - 1:b:dt]

    @property
    def energy(self) -> float:
        """Joules over the energy probe's steps: static power for their time and the dynamic energy of the
        tokens entering in them."""
        if self._energy_steps is None:
            raise RuntimeError("call energy_probe(num_steps) before the run")
        return float(self._schedule(self._energy_steps)[1].sum())

    @property
    def power(self) -> float:
        """Mean watts over the energy probe's steps."""
        if self._energy_steps is None:
            raise RuntimeError("call energy_probe(num_steps) before the run")
        times, energy = self._schedule(self._energy_steps)
        return float(energy.sum() / times.sum())

    @property
    def activity(self) -> dict[str, Any]:
        """Per-token SynOps, neuron updates and messages, the traffic's busiest core and link, and what the
        activity rests on (``profile``: 'dense assumption', or a 'measured' / 'stand-in' profile with its caveats,
        as the estimate labels it)."""
        from lava_matmulfree.loihi.traffic import traffic

        cm = self.cost_model if self._activity else None
        if cm is None:
            raise RuntimeError("call activity_probe() and workload(...) before asking for activity")
        t = traffic(cm)
        return {**cm.totals(), "busiest_core": t["busiest_core"], "busiest_link": t["busiest_link"],
                "profile": self.activity_label}

    @property
    def memory(self) -> dict[str, Any]:
        """Cores, chips and bytes of the mapping."""
        cm = self.cost_model if self._memory else None
        if cm is None:
            raise RuntimeError("call memory_probe() and workload(...) before asking for memory")
        m = cm.mapping
        return {"cores": m.cores, "chips": m.chips, "memory_bytes": m.memory_bytes}


def register() -> None:
    """Make ``Profiler.init(Loihi2SimCfg(...))`` return a :class:`Loihi2SimProfiler` (idempotent)."""
    import warnings

    from lava.magma.core.run_configs import Loihi2SimCfg

    with warnings.catch_warnings():  # lava warns when lava-loihi's hardware profiler is not installed
        warnings.simplefilter("ignore")
        from lava.utils import profiler as lava_profiler
    lava_profiler.run_cfg_dict[Loihi2SimCfg] = Loihi2SimProfiler


register()
