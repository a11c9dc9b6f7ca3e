"""EleutherAI's lm-evaluation-harness (``lm-eval``) driving the float reference and the fixed-point model.

Needs the ``eval`` extra (``pip install 'lava-matmulfree[eval]'``: lm-eval 0.4.x, which brings datasets and
the metric packages, no torch). Importing this module registers the model ``lava-matmulfree`` with the
harness, so the zero-shot tasks of the MMfreeLM paper run on a released checkpoint (offline, once the
checkpoint and the task's dataset are in the local Hugging Face caches)::

    python -m lava_matmulfree.evaluation.lm_eval_adapter run --model lava-matmulfree \\
        --model_args pretrained=ridger/MMfreeLM-370M,backend=fixed,act_bits=16 --tasks arc_easy,piqa

Model arguments: ``pretrained`` (a checkpoint folder, a Hugging Face repo id in the local cache, or a
packaged model: ``demo`` / ``deep``); ``backend`` ``float`` (the float reference) or ``fixed`` (the golden
fixed-point model, bit-identical to the Lava simulator); ``max_length`` (tokens of context, default 2048);
any fixed-point knob (``act_bits=16`` ...), which recalibrates (on real text) instead of using a shipped
compiled network. The harness's ``batch_size`` / ``device`` are accepted and ignored (one sequence at a time
on the CPU).

All three request types are served: ``loglikelihood`` (multiple choice), ``loglikelihood_rolling``
(perplexity tasks) and ``generate_until`` (greedy decoding with the state carried token by token).

:func:`write_corpus_tasks` writes three small local tasks (one per request type) built from the held-out
part of the shipped corpus, for offline use: ``python -m lava_matmulfree.evaluation.lm_eval_adapter write-tasks DIR``,
then ``--include_path DIR --tasks lmf_corpus_choice,lmf_corpus_ppl,lmf_corpus_gen``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from lava_matmulfree.utils import progress  # noqa: F401  tqdm's lock as a thread lock first: the harness's bars would fix
                        # multiprocessing's start method, and lava (set_start_method('fork')) then fails

try:
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError("lava_matmulfree.evaluation.lm_eval_adapter needs lm-eval: pip install 'lava-matmulfree[eval]'") from e

from lava_matmulfree.evaluation.accuracy import log_softmax

MODEL_NAME = "lava-matmulfree"
BACKENDS = ("float", "fixed")
DEFAULT_MAX_LENGTH = 2048
DEFAULT_MAX_GEN_TOKS = 64
HARNESS_ONLY_ARGS = ("batch_size", "max_batch_size", "device")  # passed by the harness; one CPU sequence here

# local tasks built from the shipped corpus (write_corpus_tasks)
TASK_PREFIX = "lmf_corpus"
TASK_CONTEXT_CHARS = 96  # text before the continuation to choose / generate
TASK_CHOICE_CHARS = 24  # length of each choice
TASK_CHOICES = 4
TASK_GEN_MAX_TOKS = 24  # generation budget; the target is the next word (exact match after greedy decoding)
TASK_DOC_CHARS = 320  # text of a perplexity document


def _model_folder(pretrained: str) -> Path:
    from lava_matmulfree.io.checkpoint import resolve_checkpoint
    from lava_matmulfree.io.packaged import PACKAGED_MODELS, packaged_model

    if pretrained in PACKAGED_MODELS:
        return packaged_model(pretrained)
    return resolve_checkpoint(pretrained)


@register_model(MODEL_NAME)
class MatMulFreeLM(TemplateLM):
    """The float reference or the golden fixed-point model of one checkpoint, as an lm-eval language model."""

    def __init__(self, pretrained: str = "demo", backend: str = "float", max_length: int = DEFAULT_MAX_LENGTH,
                 **kwargs):
        super().__init__()
        from lava_matmulfree.config import parse_fixed_point_overrides
        from lava_matmulfree.io.tokenizer import load_tokenizer

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        for k in HARNESS_ONLY_ARGS:
            kwargs.pop(k, None)
        overrides = parse_fixed_point_overrides([f"{k}={v}" for k, v in kwargs.items()],  # fixed-point knobs
                                                "--model_args")
        if overrides and backend == "float":
            raise ValueError(f"fixed-point knobs ({', '.join(overrides)}) need backend=fixed")
        self.folder = _model_folder(str(pretrained))
        self.backend = backend
        self._max_length = int(max_length)
        self.tokenizer = load_tokenizer(self.folder)
        self.float_model = self.net = self.golden = None
        if backend == "float":
            from lava_matmulfree.io.checkpoint import load_checkpoint
            from lava_matmulfree.model.float_model import FloatModel

            self.float_model = FloatModel(*load_checkpoint(self.folder))
        else:
            from lava_matmulfree.io.packaged import COMPILED_FILE
            from lava_matmulfree.model.golden_fast import FastGoldenModel
            from lava_matmulfree.model.quantise import QuantisedNetwork

            compiled = self.folder / COMPILED_FILE
            if compiled.is_file() and not overrides:
                from lava_matmulfree.io.checkpoint import compiled_mismatch

                self.net = QuantisedNetwork.load(compiled)
                why = compiled_mismatch(self.net.fingerprint, self.folder)
                if why is not None:  # scored the old weights without a word (after `train --overwrite`)
                    print(f"warning: {compiled} {why}; ignoring it and compiling the checkpoint", file=sys.stderr)
                    self.net = None
            if self.net is None:
                from lava_matmulfree.evaluation.accuracy import build_evaluation

                self.net = build_evaluation(checkpoint=self.folder, overrides=overrides).net
            self.golden = FastGoldenModel(self.net)  # its overflow counter accumulates over the whole run
        self.vocab_size = (self.float_model or self.net).cfg.vocab_size

    # ------------------------------------------------------------------ tokens
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos >= 0 else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string, add_bos=bool(add_special_tokens))

    def tok_decode(self, tokens) -> str:
        return self.tokenizer.decode(tokens)

    # ------------------------------------------------------------------ the model
    def _init_state(self):
        return None

    def _prefill(self, tokens, state=None):
        """(logits [T, V] as float64, state after the tokens)."""
        if self.backend == "float":
            logits, state = self.float_model.prefill(tokens, state)
            return np.asarray(logits, dtype=np.float64), state
        logits, state = self.golden.prefill(tokens, state)
        return self.golden.dequantise_logits(logits), state

    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """(sum of log p(continuation | context), whether greedy decoding gives the continuation)."""
        tokens = (context + continuation)[-(self.max_length + 1):]
        logits, _ = self._prefill(tokens[:-1])
        lp = log_softmax(logits[-len(continuation):])
        rows = np.arange(len(continuation))
        return float(lp[rows, continuation].sum()), bool(np.all(np.argmax(lp, -1) == continuation))

    # ------------------------------------------------------------------ the harness's three requests
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        out = []
        for key, context_enc, continuation_enc in requests:
            res = self._score(list(context_enc), list(continuation_enc))
            self.cache_hook.add_partial("loglikelihood", key, res)
            out.append(res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for (string,) in (r.args for r in requests):
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            total = sum(self._score(list(ctx), list(pred))[0] for ctx, pred in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            out.append(total)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for context, gen_kwargs in (r.args for r in requests):
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.get("until") or [self.tok_decode([self.eot_token_id])]
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(gen_kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS))
            ids = self.tok_encode(context) or [self.prefix_token_id]
            text = self._greedy(ids[-self.max_length:], until, max_new)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            out.append(text)
        return out

    def _greedy(self, prompt: list[int], until: list[str], max_new: int) -> str:
        """Greedy decoding with the state carried token by token, cut at the first stop string."""
        logits, state = self._prefill(prompt)
        new: list[int] = []
        text = ""
        for _ in range(max_new):
            tok = int(np.argmax(logits[-1]))
            if tok == self.eot_token_id:
                break
            new.append(tok)
            text = self.tok_decode(new)
            if any(u in text for u in until):
                break
            logits, state = self._prefill([tok], state)
        cut = min((text.index(u) for u in until if u in text), default=len(text))
        return text[:cut]


# ----------------------------------------------------------------------------------------- local tasks
def _heldout_texts() -> list[str]:
    """The held-out validation blocks of the shipped corpus (the split the packaged models trained on) as text."""
    from lava_matmulfree.io.tokenizer import ByteTokenizer
    from lava_matmulfree.io.corpus import SplitConfig, load_corpus, split_stream

    tok = ByteTokenizer()
    _, val = split_stream(load_corpus(tok).tokens, SplitConfig())
    return [tok.decode(int(t) for t in block) for block in val]


def _cut_at_space(text: str, n: int) -> str:
    """The first ~n characters of text, ending before a space (so a continuation starts with its space)."""
    k = text.rfind(" ", n // 2, n)
    return text[:k if k > 0 else n]


def write_corpus_tasks(folder: str | Path, num_docs: int = 12) -> list[str]:
    """Three lm-eval tasks on the held-out corpus text, written to ``folder`` (YAML configs + JSONL data):

    - ``lmf_corpus_choice`` (multiple choice, acc): which of four 24-character continuations follows the
      context; the distractors are the same span of other held-out blocks;
    - ``lmf_corpus_ppl`` (rolling log-likelihood: word / byte perplexity, bits per byte) on 320 characters;
    - ``lmf_corpus_gen`` (greedy generation until a space, exact match of the next word).

    Returns the task names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = [t for t in _heldout_texts() if len(t) >= TASK_DOC_CHARS + TASK_CONTEXT_CHARS]
    if len(texts) < max(num_docs, TASK_CHOICES):
        raise ValueError(f"the corpus has only {len(texts)} held-out blocks long enough for the tasks")
    texts = texts[:num_docs]
    choice, ppl, gen = [], [], []
    for i, t in enumerate(texts):
        ctx = _cut_at_space(t, TASK_CONTEXT_CHARS)
        start = len(ctx)
        options = [t[start:start + TASK_CHOICE_CHARS]]
        options += [texts[(i + j) % len(texts)][start:start + TASK_CHOICE_CHARS] for j in range(1, TASK_CHOICES)]
        label = i % TASK_CHOICES  # the true continuation at a varying position
        options[0], options[label] = options[label], options[0]
        choice.append({"context": ctx, "choices": options, "label": label})
        ppl.append({"text": t[:TASK_DOC_CHARS]})
        word = t[start + 1:].split(" ", 1)[0].split("\n", 1)[0]
        gen.append({"context": t[:start + 1], "target": word})  # the context keeps the space before the word
    common = "output_type: {kind}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n" \
             "test_split: test\n"
    specs = {
        f"{TASK_PREFIX}_choice": (choice, "multiple_choice", "doc_to_text: \"{{context}}\"\n"
                                  "doc_to_choice: \"{{choices}}\"\ndoc_to_target: label\ntarget_delimiter: \"\"\n"
                                  "metric_list:\n  - metric: acc\n"),
        f"{TASK_PREFIX}_ppl": (ppl, "loglikelihood_rolling", "doc_to_text: \"\"\ndoc_to_target: \"{{text}}\"\n"
                               "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n"
                               "  - metric: bits_per_byte\n"),
        f"{TASK_PREFIX}_gen": (gen, "generate_until", "doc_to_text: \"{{context}}\"\ndoc_to_target: \"{{target}}\"\n"
                               "target_delimiter: \"\"\n"
                               f"generation_kwargs:\n  until: [\" \", \"\\n\"]\n  max_gen_toks: {TASK_GEN_MAX_TOKS}\n"
                               "  do_sample: false\nmetric_list:\n  - metric: exact_match\n"),
    }
    for name, (docs, kind, body) in specs.items():
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        text = f"task: {name}\n" + common.format(kind=kind, data=json.dumps(str(data))) + body
        (folder / f"{name}.yaml").write_text(text + "metadata:\n  version: 1.0\n", encoding="utf-8")
    return list(specs)


def compare(pretrained: str, tasks: list[str], include_path: str | Path | None = None,
            limit: int | None = None, **fixed_point) -> dict:
    """Float and fixed point on the same tasks, side by side: {backend: lm-eval results dict}."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include_path) if include_path else None)
    out = {}
    for backend in BACKENDS:
        lm = MatMulFreeLM(pretrained, backend, **(fixed_point if backend == "fixed" else {}))
        out[backend] = simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, limit=limit,
                                       log_samples=True, bootstrap_iters=0)
    return out


def main(argv=None) -> int:
    """``write-tasks DIR [N]``: write the local corpus tasks; anything else goes to lm-eval's own command
    line with the ``lava-matmulfree`` model registered."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["write-tasks"] and len(argv) in (2, 3):
        names = write_corpus_tasks(argv[1], *(int(a) for a in argv[2:]))
        print(f"wrote {', '.join(names)} to {argv[1]} (use --include_path {argv[1]})")
        return 0
    from lm_eval.__main__ import cli_evaluate

    from lava_matmulfree.errors import LmfError

    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except (LmfError, ValueError) as e:  # the model's arguments, a checkpoint: one line, as the commands say it
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
