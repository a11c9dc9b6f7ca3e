"""The outside reference of bench_decode.py: the HGRN-Bit architecture (docs/model.md) in PyTorch fp32.

Not a benchmark itself; tests/test_benchmarks_smoke.py checks it against ``FloatModel`` in float64.
"""
from __future__ import annotations

import numpy as np

Q8_MAX, Q8_MIN = 127.0, -128.0  # the int8 grid of the per-token activation quantiser


class TorchReference:
    """The HGRN-Bit architecture of docs/model.md in PyTorch fp32, for inference (``torch.no_grad``).

    Built from a ``FloatModel`` (unfused): the same ternary matrices and scales, as dense float32 weights
    ``Wt / s``; the same norms, lower bounds and embedding. ``act_quant``: per-token int8 absmax fake
    quantisation of every BitLinear input (as ``FloatModel``); False gives plain fp32 activations.
    ``prefill(tokens, state)`` / ``step(token, state)`` mirror FloatModel's API (state: torch [L, d]).
    ``dtype``: torch.float32 (the benchmark) or torch.float64 (to check the architecture against FloatModel)."""

    def __init__(self, fm, act_quant: bool = True, dtype=None):
        import torch

        self.torch = torch
        self.F = torch.nn.functional
        self.cfg = fm.cfg
        self.act_quant = act_quant
        self.dtype = torch.float32 if dtype is None else dtype
        self.eps, self.beps = fm.cfg.rms_norm_eps, fm.cfg.bitlinear_eps

        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype)

        def lin(bl):  # dense W = Wt / s, and the BitLinear's own norm gain
            w = torch.from_numpy(np.ascontiguousarray(bl.wt)).to(self.dtype)
            w /= float(bl.s)
            return w, t(bl.norm_w)

        self.emb = t(fm.embeddings)
        self.layers = []
        for lw in fm.layers:
            self.layers.append({
                "attn_norm": t(lw.attn_norm), "g_norm": t(lw.g_norm), "mlp_norm": t(lw.mlp_norm),
                "lb": t(lw.lower_bound), "i": lin(lw.i_proj), "f": lin(lw.f_proj), "g": lin(lw.g_proj),
                "o": lin(lw.o_proj), "gate": lin(lw.gate_proj), "down": lin(lw.down_proj)})
        self.final_norm = t(fm.final_norm)
        self.lm_head = lin(fm.lm_head)

    def rms(self, x, w, eps):
        return w * x / self.torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps)

    def bitlinear(self, x, wn):
        w, norm_w = wn
        x = self.rms(x, norm_w, self.beps)
        if self.act_quant:
            q = Q8_MAX / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
            x = (x * q).round().clamp(Q8_MIN, Q8_MAX) / q
        return self.F.linear(x, w)

    def init_state(self):
        return self.torch.zeros(self.cfg.num_layers, self.cfg.hidden_size, dtype=self.dtype)

    def prefill(self, tokens, state=None):
        torch, F = self.torch, self.F
        with torch.no_grad():
            h_all = self.init_state() if state is None else state.clone()
            x = self.emb[torch.as_tensor(np.asarray(tokens, dtype=np.int64))]
            I = self.cfg.intermediate_size
            for l, p in enumerate(self.layers):
                a = self.rms(x, p["attn_norm"], self.eps)
                pre_i, pre_f, pre_g = self.bitlinear(a, p["i"]), self.bitlinear(a, p["f"]), self.bitlinear(a, p["g"])
                f = torch.sigmoid(pre_f)
                f = p["lb"] + (1.0 - p["lb"]) * f
                i = F.silu(pre_i) * (1.0 - f)
                h = h_all[l]
                hs = torch.empty_like(i)
                for k in range(x.shape[0]):
                    h = f[k] * h + i[k]
                    hs[k] = h
                h_all[l] = h
                o = self.bitlinear(self.rms(pre_g, p["g_norm"], self.eps) * F.silu(hs), p["o"])
                r = x + o
                uv = self.bitlinear(self.rms(r, p["mlp_norm"], self.eps), p["gate"])
                x = r + self.bitlinear(F.silu(uv[..., :I]) * uv[..., I:], p["down"])
            logits = self.bitlinear(self.rms(x, self.final_norm, self.eps), self.lm_head)
        return logits, h_all

    def step(self, token, state=None):
        logits, state = self.prefill([token], state)
        return logits[0], state

