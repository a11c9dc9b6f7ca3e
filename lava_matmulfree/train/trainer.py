"""Quantisation-aware training of a small MMfreeLM (HGRN-Bit) on the CPU: ``lava-matmulfree train``.

Needs the ``train`` extra (``pip install 'lava-matmulfree[train]'``: lava-dl, which brings torch); nothing
else in the package imports this module, so inference works without torch.

The torch model is the exact architecture of docs/model.md with the checkpoint's tensor names
(``state_dict()`` keys are the checkpoint's names), so its eval-mode forward is the function
:class:`lava_matmulfree.model.float_model.FloatModel` computes on the saved weights (``tests/test_train.py``
proves it). Inside every BitLinear, training sees the inference quantisation through straight-through
estimators built on lava-dl's ``slayer.utils.quantize`` (rounding with an identity gradient):

- weights: ternary absmean, ``Wt = clip(round(W*s), -1, 1)``, ``s = 1/max(mean|W|, 1e-5)``; the clip passes
  the gradient through too (as in the BitNet / MMfreeLM training code), so no latent weight freezes;
- activations: per-token int8 absmax ``clip(round(x*q), -128, 127)/q``, ``q = 127/max(max|x|, 1e-5)``,
  the scale treated as a constant in the backward pass.

The MLGRU recurrence ``h_t = f_t*h_{t-1} + i_t`` runs as a Hillis-Steele parallel scan (log2(T) steps of
whole-sequence tensor operations, exact: no logarithms or divisions) instead of a loop over time.

Data: see :mod:`lava_matmulfree.io.corpus` (CPython's ``pydoc_data.topics``; why it is fair to use).
Output: a Hugging Face folder (``config.json``, ``model.safetensors`` in float16) plus ``training.json``
with the hyper-parameters, the data source, the final losses and perplexities (torch, and the numpy float
model of the saved file).
"""
from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError("lava_matmulfree.train.trainer needs PyTorch: pip install 'lava-matmulfree[train]' "
                      "(installs lava-dl 0.6.0 and torch)") from e

from lava_matmulfree.train.options import TrainConfig, model_name, parse  # noqa: F401  (TrainConfig: API)
from lava_matmulfree.config import ModelConfig
from lava_matmulfree.model.float_model import ACT_ABSMAX_FLOOR, Q8_MAX, Q8_MIN, TERNARY_SCALE_FLOOR
from lava_matmulfree.io.corpus import (CORPUS_DESCRIPTION, CORPUS_LICENSE, CORPUS_NAME, TRAINING_FILE, SplitConfig,
                                       WindowSampler, eval_windows, load_corpus, split_stream)
from lava_matmulfree.io.params import HEAD_WEIGHT
from lava_matmulfree.evaluation.perplexity import float_model_loss

TERNARY_MAX = 1  # ternary weights in {-1, 0, +1}
QUANT_STEP = 1  # quantise to integers (after scaling)
LOSS_EMA_DECAY = 0.98  # smoothing of the training loss shown in the progress bar and history


# ----------------------------------------------------------------------------------- lava-dl quantiser
def _load_slayer_quantize():
    """lava-dl's ``slayer.utils.quantize`` module without running ``lava.lib.dl.slayer/__init__``.

    Importing the slayer package imports its object-detection code (cv2, PIL, torchvision, matplotlib);
    the quantiser itself needs only torch. ``find_spec`` of the slayer package imports its (namespace)
    parents only, then the one file is loaded on its own."""
    loaded = sys.modules.get("lava.lib.dl.slayer.utils.quantize")
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("lava.lib.dl.slayer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("lava-dl is not installed: pip install 'lava-matmulfree[train]'")
    path = Path(list(spec.submodule_search_locations)[0]) / "utils" / "quantize.py"
    mspec = importlib.util.spec_from_file_location("_lava_matmulfree_slayer_quantize", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    return mod


_slayer_q = _load_slayer_quantize()


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward (lava-dl slayer quantize, round mode, step 1)."""
    return _slayer_q.quantize(x, step=QUANT_STEP, mode=_slayer_q.MODE.ROUND)


def ste_clip(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """clip(x) forward, identity backward."""
    return x + (x.clamp(lo, hi) - x).detach()


def _over(num: float, den: torch.Tensor) -> torch.Tensor:
    """num / den as a true IEEE division (``num / tensor`` in torch is ``num * reciprocal``: 1 ulp off numpy)."""
    return torch.div(den.new_tensor(num), den)


def ternary_ste(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Wt in {-1,0,1} with a straight-through gradient to w*s, s): W ~ Wt / s (float_model.ternarize)."""
    s = _over(1.0, w.detach().abs().mean().clamp(min=TERNARY_SCALE_FLOOR))
    return ste_clip(ste_round(w * s), -TERNARY_MAX, TERNARY_MAX), s


def act_quant_ste(x: torch.Tensor) -> torch.Tensor:
    """Per-token int8 absmax fake quantisation with an identity gradient (float_model.act_quant_q8)."""
    q = _over(Q8_MAX, x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=ACT_ABSMAX_FLOOR))
    return ste_clip(ste_round(x * q), Q8_MIN, Q8_MAX) / q


# ----------------------------------------------------------------------------------- modules
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)


class BitLinear(nn.Module):
    """Q8(RMSNorm_norm(x)) @ Wt^T / s, trained through the STEs; ``weight`` is [out, in]."""

    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        self.norm = RMSNorm(d_in, eps)

    def forward(self, x):
        wt, s = ternary_ste(self.weight)
        return F.linear(act_quant_ste(self.norm(x)), wt) / s


def linear_scan(f: torch.Tensor, i: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All h_t of h_t = f_t*h_{t-1} + i_t over axis -2 ([..., T, d]), h_{-1} = h0 (zeros if None).

    Hillis-Steele scan of the affine maps (a, b): h -> a*h + b, composed in log2(T) rounds."""
    a, b = f, i
    if h0 is not None:
        b = torch.cat([b[..., :1, :] + a[..., :1, :] * h0.unsqueeze(-2), b[..., 1:, :]], dim=-2)
    T, k = f.shape[-2], 1
    while k < T:
        b = torch.cat([b[..., :k, :], b[..., k:, :] + a[..., k:, :] * b[..., :-k, :]], dim=-2)
        if 2 * k < T:  # the last round needs no new a
            a = torch.cat([a[..., :k, :], a[..., k:, :] * a[..., :-k, :]], dim=-2)
        k *= 2
    return b


def loop_scan(f: torch.Tensor, i: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """The same recurrence as a loop over time (the reference of linear_scan)."""
    h = torch.zeros_like(i[..., 0, :]) if h0 is None else h0
    out = []
    for t in range(f.shape[-2]):
        h = f[..., t, :] * h + i[..., t, :]
        out.append(h)
    return torch.stack(out, dim=-2)


class MLGRU(nn.Module):
    """The released HGRN-Bit token mixer (``attn``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, be = cfg.hidden_size, cfg.bitlinear_eps
        self.i_proj, self.f_proj = BitLinear(d, d, be), BitLinear(d, d, be)
        self.g_proj, self.o_proj = BitLinear(d, d, be), BitLinear(d, d, be)
        self.g_norm = RMSNorm(d, cfg.rms_norm_eps)

    def forward(self, a, lower_bound, h0=None):
        f = torch.sigmoid(self.f_proj(a))
        f = lower_bound + (1.0 - lower_bound) * f
        i = F.silu(self.i_proj(a)) * (1.0 - f)
        h = linear_scan(f, i, h0)
        o = self.o_proj(self.g_norm(self.g_proj(a)) * F.silu(h))  # silu(h) = h * sigmoid(h)
        return o, h[..., -1, :]


class GLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, I, be = cfg.hidden_size, cfg.intermediate_size, cfg.bitlinear_eps
        self.intermediate = I
        self.gate_proj = BitLinear(d, 2 * I, be)
        self.down_proj = BitLinear(I, d, be)

    def forward(self, m):
        u, v = self.gate_proj(m).split(self.intermediate, dim=-1)
        return self.down_proj(F.silu(u) * v)


class HGRNBitBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.attn = MLGRU(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = GLU(cfg)

    def forward(self, x, lower_bound, h0=None):
        o, h_last = self.attn(self.attn_norm(x), lower_bound, h0)
        r = x + o
        return r + self.mlp(self.mlp_norm(r)), h_last


class HGRNBitModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        if cfg.use_lower_bound:
            self.lower_bounds = nn.Parameter(torch.zeros(cfg.num_layers, cfg.hidden_size))
        self.layers = nn.ModuleList(HGRNBitBlock(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def layer_lower_bounds(self) -> torch.Tensor:
        """[L, d]: cumsum(softmax over layers) minus its first row (so layer 0 has none); zeros if off."""
        if not self.cfg.use_lower_bound:
            return self.embeddings.weight.new_zeros(self.cfg.num_layers, self.cfg.hidden_size)
        cs = torch.softmax(self.lower_bounds, dim=0).cumsum(dim=0)
        return cs - cs[:1]

    def forward(self, tokens, state=None):
        x = self.embeddings(tokens)
        lb = self.layer_lower_bounds()
        new_state = []
        for l, layer in enumerate(self.layers):
            x, h = layer(x, lb[l], None if state is None else state[l])
            new_state.append(h)
        return self.norm(x), torch.stack(new_state)


class HGRNBitForCausalLM(nn.Module):
    """``state_dict()`` names are exactly the checkpoint's (lava_matmulfree.io.params.expected_tensors)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.model = HGRNBitModel(cfg)
        self.lm_head = BitLinear(cfg.hidden_size, cfg.vocab_size, cfg.bitlinear_eps)

    def forward(self, tokens, state=None):
        """(logits [..., T, V], MLGRU states [L, ..., d] after the last token) of tokens [..., T];
        ``state`` (same shape) is the state before the first token, zeros when None."""
        x, state = self.model(tokens, state)
        return self.lm_head(x), state

    def init_weights(self, std: float, generator: torch.Generator):
        """N(0, std) for every projection and the embedding (HGRN-Bit's initializer_range), norm gains 1,
        lower-bound parameter 0 (uniform softmax: lb_l = l / L)."""
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name == "model.lower_bounds":
                    p.zero_()
                else:
                    p.normal_(0.0, std, generator=generator)

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}

    def load_numpy_params(self, params) -> None:
        sd = self.state_dict()
        missing = sorted(set(sd) - set(params))
        if missing:
            raise KeyError(f"missing tensors: {missing[:3]}")
        self.load_state_dict({k: torch.as_tensor(np.asarray(params[k]), dtype=sd[k].dtype) for k in sd})


# ----------------------------------------------------------------------------------- training
def lr_at(step: int, tc: TrainConfig) -> float:
    """Linear warm-up then cosine decay from lr to lr * min_lr_ratio."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    frac = (step - tc.warmup_steps) / max(1, tc.steps - tc.warmup_steps)
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
    return tc.lr * (tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * cos)


def model_config(tc: TrainConfig, tokenizer) -> ModelConfig:
    return ModelConfig(name=tc.name, vocab_size=tokenizer.vocab_size, hidden_size=tc.hidden_size,
                       num_layers=tc.num_layers, intermediate_size=tc.intermediate_size,
                       use_lower_bound=True, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)


@torch.no_grad()
def torch_loss(model: HGRNBitForCausalLM, windows, batch_size: int) -> float:
    """Mean cross-entropy over evaluation windows (batched by equal length; each from a zero state)."""
    was = model.training
    model.eval()
    by_len: dict[int, list] = {}
    for x, y in windows:
        by_len.setdefault(len(y), []).append((x, y))
    total, count = 0.0, 0
    for group in by_len.values():
        for k in range(0, len(group), batch_size):
            chunk = group[k:k + batch_size]
            x = torch.as_tensor(np.stack([c[0] for c in chunk]))
            y = torch.as_tensor(np.stack([c[1] for c in chunk]))
            logits, _ = model(x)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                           reduction="sum"))
            count += y.numel()
    model.train(was)
    return total / count


def make_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = name.endswith("proj.weight") or name == HEAD_WEIGHT
        (decay if is_matrix else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.adam_eps)


def _save_snapshot(out: Path, cfg: ModelConfig, model: nn.Module, tc: TrainConfig, split: SplitConfig, step: int,
                   command: str) -> None:
    """Write the checkpoint of an unfinished run: saved into a scratch folder, then each file moved into
    ``out`` by an atomic rename, so an interrupted run leaves a complete (earlier) checkpoint behind."""
    import os
    import shutil

    from lava_matmulfree.io.checkpoint import save_checkpoint

    scratch = out.parent / f".{out.name}.snapshot"
    shutil.rmtree(scratch, ignore_errors=True)
    save_checkpoint(scratch, cfg, model.numpy_params(), dtype=tc.save_dtype)
    (scratch / TRAINING_FILE).write_text(json.dumps({"command": command, "snapshot_step": step, "train": asdict(tc),
                                                     "split": asdict(split)}, indent=2) + "\n", encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    for f in scratch.iterdir():
        os.replace(f, out / f.name)
    scratch.rmdir()


def train(tc: TrainConfig, out: str | Path | None, split: SplitConfig = SplitConfig(), progress: bool = True,
          check_float_model: bool = True, log=print, command: str = "") -> dict:
    """Train, and (with ``out``) write the model folder and training.json. Returns the training record. ``out``
    is checked (a folder, or one that can be made, where files can be written) before the training starts."""
    from lava_matmulfree.io.checkpoint import load_checkpoint, save_checkpoint
    from lava_matmulfree.utils.atomic import check_output_dir

    if out is not None:
        check_output_dir(out)
    from lava_matmulfree.model.float_model import FloatModel
    from lava_matmulfree.io.tokenizer import ByteTokenizer

    t_start = time.perf_counter()
    torch.set_num_threads(tc.threads)
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    gen = torch.Generator().manual_seed(tc.seed)

    tok = ByteTokenizer()
    corpus = load_corpus(tok)
    train_segs, val_blocks = split_stream(corpus.tokens, split)
    sampler = WindowSampler(train_segs, split.seq_len)
    val_all = eval_windows(val_blocks, split.seq_len)
    # a fixed (seeded) subset for the periodic evaluations; the final numbers use every window
    if 0 < tc.eval_windows < len(val_all):
        pick = np.sort(np.random.default_rng(tc.seed).choice(len(val_all), tc.eval_windows, replace=False))
        val_periodic = [val_all[k] for k in pick]
    else:
        val_periodic = val_all
    # a fixed training sample of the same size, to report train loss the same way as val loss
    train_eval = eval_windows([np.concatenate(train_segs)[:len(val_blocks) * split.block_tokens]],
                              split.seq_len)

    tc = replace(tc, name=model_name(tc.name, out))  # training.json records the name config.json carries
    cfg = model_config(tc, tok)
    model = HGRNBitForCausalLM(cfg)
    model.init_weights(tc.init_std, gen)
    opt = make_optimizer(model, tc)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {cfg.num_layers} layers, d={cfg.hidden_size}, I={cfg.intermediate_size}, "
        f"vocab={cfg.vocab_size}, {n_params / 1e6:.2f} M parameters")
    log(f"data: {corpus.num_bytes} bytes, {len(corpus.tokens)} tokens; train {sampler.num_tokens} tokens, "
        f"val {sum(len(b) for b in val_blocks)} tokens ({len(val_all)} windows of <= {split.seq_len})")

    history = []
    ema = None
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=tc.steps, desc="train", unit="step", dynamic_ncols=True)
    model.train()
    for step in range(tc.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x, y = sampler.sample(tc.batch_size, rng)
        logits, _ = model(torch.as_tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), torch.as_tensor(y).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        lv = float(loss)
        if not math.isfinite(lv):
            raise FloatingPointError(f"training loss became {lv} at step {step}")
        ema = lv if ema is None else LOSS_EMA_DECAY * ema + (1 - LOSS_EMA_DECAY) * lv
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}", lr=f"{lr_at(step, tc):.2e}")
        last = step + 1 == tc.steps
        if out is not None and tc.save_every > 0 and (step + 1) % tc.save_every == 0 and not last:
            _save_snapshot(Path(out), cfg, model, tc, split, step + 1, command)
        if tc.eval_every > 0 and ((step + 1) % tc.eval_every == 0) and not last:
            vl = torch_loss(model, val_periodic, tc.batch_size)
            history.append({"step": step + 1, "train_loss_ema": ema, "val_loss": vl,
                            "elapsed_s": time.perf_counter() - t0})
            msg = f"step {step + 1}: train (EMA) {ema:.4f}, val {vl:.4f} (ppl {math.exp(vl):.2f})"
            (bar.write if bar is not None else log)(msg)
    if bar is not None:
        bar.close()
    train_time = time.perf_counter() - t0

    final_train = torch_loss(model, train_eval, tc.batch_size)
    final_val = torch_loss(model, val_all, tc.batch_size)
    log(f"trained {tc.steps} steps in {train_time:.0f} s ({tc.steps / train_time:.2f} steps/s, "
        f"{tc.steps * tc.batch_size * split.seq_len / train_time:.0f} tokens/s); "
        f"train loss {final_train:.4f}, val loss {final_val:.4f} (ppl {math.exp(final_val):.2f})")

    record = {
        "command": command,
        "model": {"num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
                  "intermediate_size": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
                  "use_lower_bound": cfg.use_lower_bound, "parameters": n_params},
        "train": asdict(tc),
        "split": asdict(split),
        "data": {"source": CORPUS_NAME, "description": CORPUS_DESCRIPTION, "license": CORPUS_LICENSE,
                 "python_version": corpus.python_version, "sha256": corpus.sha256,
                 "documents": corpus.num_documents, "bytes": corpus.num_bytes, "tokens": int(len(corpus.tokens)),
                 "train_tokens": int(sampler.num_tokens),
                 "val_tokens": int(sum(len(y) for _, y in val_all)),
                 "tokens_seen": tc.steps * tc.batch_size * split.seq_len,
                 "tokenizer": "ByteTokenizer (0 <pad>, 1 <s>, 2 </s>, byte b -> 3 + b)"},
        "quantisation": {"weights": "ternary absmean, one scale per matrix (STE)",
                         "activations": "per-token int8 absmax (STE)",
                         "ste": "lava-dl 0.6.0 slayer.utils.quantize (round, identity gradient)"},
        "result": {"train_loss": final_train, "train_perplexity": math.exp(final_train),
                   "val_loss": final_val, "val_perplexity": math.exp(final_val),
                   "wall_time_s": train_time, "steps_per_s": tc.steps / train_time,
                   "torch_version": torch.__version__, "torch_threads": tc.threads},
        "history": history,
    }
    if out is not None:
        out = Path(out)
        save_checkpoint(out, cfg, model.numpy_params(), dtype=tc.save_dtype)
        if check_float_model:
            cfg2, params2 = load_checkpoint(out)
            fl = float_model_loss(FloatModel(cfg2, params2), val_all, progress=progress)
            record["result"].update({"float_model_val_loss": fl, "float_model_val_perplexity": math.exp(fl),
                                     "float_model_note": f"numpy FloatModel (float64) of the saved "
                                                         f"{tc.save_dtype} checkpoint, same validation windows"})
            log(f"saved {tc.save_dtype} checkpoint, float model val loss {fl:.4f} (ppl {math.exp(fl):.2f}); "
                f"torch {final_val:.4f}")
        record["result"]["total_wall_time_s"] = time.perf_counter() - t_start
        (out / TRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {out}")
    return record


def main(argv=None, args=None) -> int:
    """``lava-matmulfree train``; ``args`` (from :func:`lava_matmulfree.train.options.parse`) skips parsing."""
    args = args or parse(argv)
    args, tc, split = args
    command = " ".join(["lava-matmulfree train", *(sys.argv[1:] if argv is None else argv)])
    train(tc, args.out, split, progress=not args.no_progress, command=command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
