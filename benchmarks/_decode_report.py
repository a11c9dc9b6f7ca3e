"""bench_decode.py's figures from what it measured: per-row speed and memory, the bandwidth bound, the targets;
and the table it prints (``render_table``, also ``bench_decode.py --table FILE``).

Not a benchmark itself; the figures are defined in bench_decode.py's docstring.
"""
from __future__ import annotations

import numpy as np

from _harness import MIB, MS, NOISY_SPREAD, med, robust, within

TARGETS = {"golden_decode_tokens_per_s": 50.0, "golden_over_torch_decode": 1.5,
           "golden_prefill_tokens_per_s": 300.0, "sim_fused_decode_tokens_per_s": 5.0}
# the goals of issues 16 and 26 (ratios in one run, so that a shared machine's load cancels): the kernel and the
# whole golden decode against the machine's read bound, prefill against the previous golden path, memory
# against its floor, the Lava graph against sim-stack
GOALS = {"kernel_1t_fraction_of_1t_bound": 0.85, "kernel_fraction_of_2t_bound": 0.70,
         "golden_fraction_of_2t_bound": 0.60, "golden_prefill_over_before": 2.0,
         "golden_held_over_packed_plus_embed": 1.5, "sim_fused_pss_over_golden_pss": 2.0,
         "sim_fused_over_sim_stack_decode": 0.5}


def target(value, goal, op=">="):
    return {"value": value, "target": f"{op} {goal}", "met": bool(value >= goal if op == ">=" else value <= goal)}


def _speed(out: dict, name: str, ms_per_token: list, loads=None) -> None:
    """``name``_ms_per_token (median), _best, _tokens_per_s (median and best) and ``name``_stats (robust)."""
    st = robust(ms_per_token)
    if loads:
        st["load_max"] = max(x[0] for x in loads)
    out[f"{name}_stats"] = st
    out[f"{name}_ms_per_token"], out[f"{name}_ms_per_token_best"] = st["median"], st["best"]
    out[f"{name}_tokens_per_s"], out[f"{name}_tokens_per_s_best"] = MS / st["median"], MS / st["best"]


def row_figures(rows, prompt_len: int, gmem: dict | None, lava_all: dict, loads=None) -> dict:
    """Median and best per row (the timed numpy / torch rows, then each Lava backend from its worker's summary);
    ``loads``: the load average after each repeat."""
    res_rows = {}
    for row in rows:
        r = res_rows[row.name] = {"note": row.note, "resident_mib": row.resident / MIB,
                                  "transient_peak_mib": med(row.transient) / MIB, "prefill_s_all": row.prefill_s,
                                  "warmup_s": row.warmup_s}
        _speed(r, "decode", [x * MS for x in row.decode_s_per_token], loads)
        _speed(r, "prefill", [x / prompt_len * MS for x in row.prefill_s], loads)
        r["decode_ms_per_token_all"] = r["decode_stats"]["all"]
        if row.ramp_ms and row.ramp_ms[0]:             # each untimed step's median over the repeats
            r["decode_ramp_ms"] = [float(np.median(step)) for step in zip(*row.ramp_ms)]
    if gmem is not None:
        res_rows["golden"]["process_pss_mib"] = gmem["pss_mib"]
    for b, lv in lava_all.items():
        r = res_rows[b] = {
            "note": f"Lava Loihi2SimCfg fixed_pt, {lv['leaf_processes']} leaf processes, "
                    f"{lv['steps_per_decode_token']} steps per decoded token",
            "startup_s": lv["startup_s"], "startup_stats": robust(lv["startup_s_all"]),
            "process_pss_mib": lv["pss_peak_mib"]}
        _speed(r, "decode", lv["decode_ms_per_token_all"], lv["loads"])
        _speed(r, "prefill", lv["prefill_ms_per_token_all"], lv["loads"])
    return res_rows


def bandwidth_figures(res_rows: dict, weight_bytes, bw: dict, kern: dict, method: str = "", nbytes: int = 0,
                      loads=None, per_repeat: int = 0) -> dict:
    """The read bound of a token and the fractions of it the synapse kernel alone and the whole golden token
    reach. ``bw``: GB/s of each read pass per thread count; ``kern``: seconds of each kernel pass. The bound of
    N threads is the best pass of the reader, unless a kernel read its weights faster (then that kernel's best
    rate is the bound, and ``bound_source_Nt`` says so); 2 threads are bounded by at least the 1-thread bound.
    Fractions = bound ms / best ms of the figure (``_median``: / its median ms). With ``per_repeat`` (the read
    passes and kernel passes each repeat timed, one kind after the other), each kernel is also paired with the
    reader repeat by repeat (``kernel_Nt_fraction_by_repeat``: the repeat's best read pass of N threads over its
    best kernel pass), which a host whose speed moves between repeats does not skew."""
    from membw import GB

    from lava_matmulfree.model.ternary_kernels import host_dot_mode, host_kernel_label

    bound = {"weight_bytes_per_token": weight_bytes, "reader": method, "buffer_bytes": nbytes,
             "dot_mode": host_dot_mode(), "kernel": host_kernel_label(),
             "statistic": "bound: best read pass; fractions: best repeat"}
    for th in (1, 2):
        st = robust(bw[th], higher_is_better=True)
        if loads:
            st["load_max"] = max(x[0] for x in loads)
        bound[f"read_{th}t_stats"] = st
        bound[f"read_gb_s_{th}t"], bound[f"read_gb_s_{th}t_median"] = st["best"], st["median"]
        bound[f"read_gb_s_{th}t_all"] = bw[th]
    if not weight_bytes:
        return bound
    for k, ts in kern.items():
        st = robust([t * MS for t in ts])
        if loads:
            st["load_max"] = max(x[0] for x in loads)
        bound[f"{k}_stats"] = st
        bound[f"{k}_ms_per_token"], bound[f"{k}_ms_per_token_best"] = st["median"], st["best"]
        bound[f"{k}_ms_per_token_all"] = st["all"]
        bound[f"{k}_gb_s_best"] = weight_bytes / (st["best"] / MS) / GB
    prev = 0.0
    for th in (1, 2):
        cands = [(bound[f"read_gb_s_{th}t"], f"the reader, {th} thread(s)")]
        if f"kernel-{th}t_gb_s_best" in bound:
            cands.append((bound[f"kernel-{th}t_gb_s_best"], f"kernel-{th}t: it read its weights faster than the "
                                                             f"reader ({bound[f'read_gb_s_{th}t']:.1f} GB/s)"))
        if th == 2:
            cands.append((prev, "the 1-thread bound: above the 2-thread reader"))
        gbs, src = max(cands, key=lambda c: c[0])
        prev = gbs
        bound[f"bound_gb_s_{th}t"], bound[f"bound_source_{th}t"] = gbs, src
        bound[f"bound_ms_per_token_{th}t"] = weight_bytes / (gbs * GB) * MS
    for th in (1, 2) if per_repeat else ():
        name, reads = f"kernel-{th}t", bw[th]
        if name not in kern:
            continue
        by_repeat = [weight_bytes / (max(reads[i:i + per_repeat]) * GB) / min(kern[name][i:i + per_repeat])
                     for i in range(0, min(len(reads), len(kern[name])), per_repeat)]
        bound[f"kernel_{th}t_fraction_by_repeat"] = by_repeat
        bound[f"kernel_{th}t_fraction_by_repeat_median"] = med(by_repeat)
    figs = {"kernel_1t": (bound.get("kernel-1t_ms_per_token_best"), bound.get("kernel-1t_ms_per_token")),
            "kernel_2t": (bound.get("kernel-2t_ms_per_token_best"), bound.get("kernel-2t_ms_per_token")),
            "golden": (res_rows["golden"]["decode_ms_per_token_best"], res_rows["golden"]["decode_ms_per_token"]),
            "golden_2t": (res_rows["golden-2t"]["decode_ms_per_token_best"],
                          res_rows["golden-2t"]["decode_ms_per_token"])}
    for th in (1, 2):
        b_ms = bound[f"bound_ms_per_token_{th}t"]
        for name, (best, median) in figs.items():
            if best:
                bound[f"{name}_fraction_of_{th}t_bound"] = b_ms / best
                bound[f"{name}_fraction_of_{th}t_bound_median"] = b_ms / median
    return bound


def targets_and_memory(res_rows: dict, bound: dict, gmem: dict | None, lava_all: dict) -> tuple[dict, dict]:
    """Every target and goal met or missed, and the memory ratios behind the memory goals. Speeds: medians of
    the better of golden and golden-2t; fractions of the read bound: best repeats (the bound is a best pass);
    the Lava ratio: medians of both backends."""
    g, g2, before = res_rows["golden"], res_rows["golden-2t"], res_rows["golden-before"]
    med_golden = min(g["decode_ms_per_token"], g2["decode_ms_per_token"])
    best_prefill = max(g["prefill_tokens_per_s"], g2["prefill_tokens_per_s"])
    targets = {"golden_decode_tokens_per_s": target(MS / med_golden, TARGETS["golden_decode_tokens_per_s"])}
    if "torch" in res_rows:
        targets["golden_over_torch_decode"] = target(res_rows["torch"]["decode_ms_per_token"] / med_golden,
                                                     TARGETS["golden_over_torch_decode"])
    targets["golden_prefill_tokens_per_s"] = target(best_prefill, TARGETS["golden_prefill_tokens_per_s"])
    targets["golden_prefill_over_before"] = target(best_prefill / before["prefill_tokens_per_s"],
                                                   GOALS["golden_prefill_over_before"])
    for t in targets.values():
        t["golden_row"] = "better of golden (1 thread) and golden-2t, medians"
    if bound["weight_bytes_per_token"]:
        b1, b2 = bound["bound_ms_per_token_1t"], bound["bound_ms_per_token_2t"]
        k1 = bound["kernel-1t_ms_per_token_best"]
        best_kernel = min(k1, bound["kernel-2t_ms_per_token_best"])
        best_golden = min(g["decode_ms_per_token_best"], g2["decode_ms_per_token_best"])
        targets["kernel_1t_fraction_of_1t_bound"] = target(b1 / k1, GOALS["kernel_1t_fraction_of_1t_bound"])
        targets["kernel_fraction_of_2t_bound"] = target(b2 / best_kernel, GOALS["kernel_fraction_of_2t_bound"])
        targets["golden_fraction_of_2t_bound"] = target(b2 / best_golden, GOALS["golden_fraction_of_2t_bound"])
        for k in ("kernel_1t_fraction_of_1t_bound", "kernel_fraction_of_2t_bound", "golden_fraction_of_2t_bound"):
            targets[k]["statistic"] = "bound: best read pass; kernel / golden: best repeat (of 1 and 2 threads)"
    memory = {}
    if gmem is not None:
        held = gmem["model_held_mib"]
        memory = {"golden_process": gmem,
                  "golden_held_over_packed_plus_embed": held / (gmem["packed_mib"] + gmem["embed_mib"])
                  if gmem["packed_mib"] else None}
        if memory["golden_held_over_packed_plus_embed"] is not None:
            targets["golden_held_over_packed_plus_embed"] = target(memory["golden_held_over_packed_plus_embed"],
                                                                   GOALS["golden_held_over_packed_plus_embed"], "<=")
        for b, lv in lava_all.items():
            memory[f"{b}_pss_over_golden_pss"] = lv["pss_peak_mib"] / gmem["pss_mib"]
        if "sim-fused" in lava_all:
            targets["sim_fused_pss_over_golden_pss"] = target(memory["sim-fused_pss_over_golden_pss"],
                                                              GOALS["sim_fused_pss_over_golden_pss"], "<=")
    if "sim-fused" in lava_all:
        targets["sim_fused_decode_tokens_per_s"] = target(res_rows["sim-fused"]["decode_tokens_per_s"],
                                                          TARGETS["sim_fused_decode_tokens_per_s"])
    if "sim-fused" in lava_all and "sim-stack" in lava_all:
        targets["sim_fused_over_sim_stack_decode"] = target(
            res_rows["sim-fused"]["decode_tokens_per_s"] / res_rows["sim-stack"]["decode_tokens_per_s"],
            GOALS["sim_fused_over_sim_stack_decode"])
        targets["sim_fused_over_sim_stack_decode"]["statistic"] = "medians of both backends' repeats"
    return targets, memory


def _noisy(st: dict | None) -> str:
    """' **noisy** (...)' for a figure whose repeats spread more than NOISY_SPREAD x, else ''."""
    if not st or not st.get("noisy"):
        return ""
    load = f", load up to {st['load_max']:.1f}" if "load_max" in st else ""
    return f" **noisy** (max/min {st['spread']:.1f}x{load})"


def _mb(st: dict | None, fmt: str = ".1f", scale: float = 1.0, invert: bool = False) -> str:
    """'median / best' of a figure (``invert``: of scale / value, e.g. tokens/s from ms), noisy marked."""
    if not st:
        return "-"
    m, b = (scale / st["median"], scale / st["best"]) if invert else (st["median"] * scale, st["best"] * scale)
    return f"{m:{fmt}} / {b:{fmt}}{_noisy(st)}"



def _bound_fractions(bound: dict, key: str) -> str:
    """'best (median) of the 1-thread bound, best (median) of the 2-thread bound' of one figure."""
    return ", ".join(f"{bound[f'{key}_fraction_of_{th}t_bound']:.0%} "
                     f"({bound[f'{key}_fraction_of_{th}t_bound_median']:.0%}) of the {th}-thread bound"
                     for th in (1, 2))


def render_table(res: dict) -> str:
    """The README's table and notes from a bench_decode JSON (``--table FILE`` prints it again)."""
    rows, bound, mem = res["rows"], res["bandwidth_bound"], res["memory"]
    torch_row = rows.get("torch")
    lines = [f"== {res['config']}, random ternary weights (seed {res['seed']}): decode and prefill, one run ==",
             f"load average (1, 5, 15 min): start {res['load_start']}, after the numpy/torch rows "
             f"{res['load_after_numpy_rows']}, end {res['load_end']}; each figure median / best of its "
             f"{res['protocol']['repeats']} repeats (Lava: {res['protocol'].get('lava_repeats', '?')}), **noisy** "
             f"where they spread more than {NOISY_SPREAD:g}x (max/min); prefill = "
             f"{res['protocol']['prompt_tokens']}-token prompt; decode = {res['protocol']['decode_tokens']} tokens"
             f" after {res['protocol'].get('decode_ramp_steps', 0)} untimed ones"]
    if res.get("torch_skipped"):
        lines.append(f"torch rows skipped: {res['torch_skipped']}")
    lines += ["", "| model | decode tokens/s (median / best) | ms/token | x torch (medians) | prefill tokens/s | x torch "
                  "| memory MiB |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        if "process_pss_mib" in r and "resident_mib" not in r:
            memory = f"{r['process_pss_mib']:.0f} (PSS, all processes)"
        elif "process_pss_mib" in r:
            memory = f"{r['resident_mib']:.0f} held / {r['process_pss_mib']:.0f} process PSS"
        else:
            memory = f"{r['resident_mib']:.0f} held"
        x_dec = f"{r['decode_tokens_per_s'] / torch_row['decode_tokens_per_s']:.2f}" if torch_row else "-"
        x_pre = f"{r['prefill_tokens_per_s'] / torch_row['prefill_tokens_per_s']:.2f}" if torch_row else "-"
        lines.append(f"| {name} | {_mb(r.get('decode_stats'), scale=MS, invert=True)} "
                     f"| {_mb(r.get('decode_stats'), '.2f')} | {x_dec} "
                     f"| {_mb(r.get('prefill_stats'), scale=MS, invert=True)} | {x_pre} | {memory} |")
    if bound.get("weight_bytes_per_token"):
        wb = bound["weight_bytes_per_token"]
        lines += ["", f"Read bound (same run): {wb / 1e6:.1f} MB of packed weights per decode token; reader "
                      f"{bound.get('reader', '?')} over {bound.get('buffer_bytes', 0) / MIB:.0f} MiB, GB/s median / "
                      f"best of {bound['read_1t_stats']['n']} passes: 1 thread {_mb(bound['read_1t_stats'])}, "
                      f"2 threads {_mb(bound['read_2t_stats'])}."]
        for th in (1, 2):
            lines.append(f"  {th}-thread bound {bound[f'bound_gb_s_{th}t']:.1f} GB/s = "
                         f"{bound[f'bound_ms_per_token_{th}t']:.2f} ms per token (from "
                         f"{bound[f'bound_source_{th}t']})")
        lines.append(f"  fractions of the bound = bound ms / best ms (median ms in brackets); kernel "
                     f"({bound.get('kernel', bound['dot_mode'])}) on the {wb / 1e6:.0f} MB alone:")
        for name, label in (("kernel-1t", "kernel, 1 thread"), ("kernel-2t", "kernel, 2 threads")):
            key = name.replace("-", "_")
            lines.append(f"  {label}: ms {_mb(bound[f'{name}_stats'], '.2f')} ({bound[f'{name}_gb_s_best']:.1f} "
                         f"GB/s best): {_bound_fractions(bound, key)}")
            by_repeat = bound.get(f"{key}_fraction_by_repeat")
            if by_repeat:
                lines.append(f"    paired repeat by repeat (each repeat's best pass against that repeat's best "
                             f"{name[-2]}-thread read pass): median {med(by_repeat):.0%}, "
                             f"{min(by_repeat):.0%}-{max(by_repeat):.0%} over {len(by_repeat)} repeats")
        for name, key in (("golden", "golden"), ("golden-2t", "golden_2t")):
            lines.append(f"  whole {name} token: ms {_mb(rows[name]['decode_stats'], '.2f')}: "
                         f"{_bound_fractions(bound, key)}")
        ramps = [(n, r["decode_ramp_ms"]) for n, r in rows.items()
                 if n.startswith("golden") and r.get("decode_ramp_ms")]
        if ramps:
            lines.append("  the untimed decode steps before the timed ones (ms each, median over the repeats; the "
                         "cache's ramp after the prefill):")
            lines += [f"    {n}: " + " ".join(f"{x:.2f}" for x in ramp) for n, ramp in ramps]
    if mem.get("golden_process"):
        gp = mem["golden_process"]
        lines += ["", f"Memory: golden process (network loaded from its file, weights packed) PSS "
                      f"{gp['pss_mib']:.0f} MiB, of which {gp['pss_before_load_mib']:.0f} before loading (interpreter, "
                      f"numpy, numba); the model holds {gp['model_held_mib']:.0f} MiB = packed weights "
                      f"{gp['packed_mib']:.0f} + embedding {gp['embed_mib']:.0f} + the rest"
                      + "".join(f"; {b} {mem[f'{b}_pss_over_golden_pss']:.2f}x golden's PSS"
                                for b in res.get("lava", {}))]
    lines += ["", "targets and goals:"]
    for k, t in res["targets"].items():
        lines.append(f"  {k}: {t['value']:.2f} (target {t['target']}) {'MET' if t['met'] else 'MISSED'}"
                     + (f" [{t['statistic']}]" if "statistic" in t else ""))
    lines += ["", "golden model by stage (stage-by-stage timing, one timed pass, ms per token):"]
    for phase, s in res["golden_stages"].items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["stages_ms_per_token"].items(), key=lambda kv: -kv[1]))
        lines.append(f"  {phase}: {s['ms_per_token']:.2f} total = {parts}")
    for b, lv in res.get("lava", {}).items():
        fl = lv["chain_floor"]
        # (a file of an earlier run has no resolution: its figure is printed as it was)
        own = within(lv["decode_lava_cpu_ms_per_step"], lv.get("decode_lava_cpu_resolution_ms_per_step", 0.0))
        lines.append(f"{b}: {lv['leaf_processes']} leaf processes, {lv['steps_per_decode_token']} steps per decoded "
                     f"token, start-up {_mb(rows[b].get('startup_stats'))} s (median / best), medians of "
                     f"{lv['repeats']} repeats: decode step {lv['decode_ms_per_step']:.1f} ms wall "
                     f"(Lava's own CPU {own} + run_spk "
                     f"{lv['decode_compute_cpu_ms_per_step']:.1f} ms); chain floor of {fl['leaf_processes']} "
                     f"trivial processes {fl['ms_per_step']:.1f} ms/step")
        pp = lv.get("process_pss_mib")
        if pp:
            lines.append(f"  {b} PSS {lv['pss_peak_mib']:.0f} MiB: parent {pp['parent']:.0f}, children (largest first) "
                         + ", ".join(f"{v:.0f}" + (f" ({m})" if m != "?" else "")
                                     for v, m in list(zip(pp["children"], pp.get("children_models", ["?"] * 99)))[:6])
                         + (f", ... ({len(pp['children'])} processes)" if len(pp["children"]) > 6 else ""))
    return "\n".join(lines)

