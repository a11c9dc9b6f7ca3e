"""``generate`` (one prompt on any backend) and ``chat`` (prompts from stdin in one Lava runtime): both stream
the new text to stdout as the graph chooses each token; backend and timing go to stderr."""
from __future__ import annotations

import sys

from lava_matmulfree.cli.arguments import (DEFAULT_MAX_NEW_TOKENS, _add_generation_args, _add_model_command,
                                           _add_run_choice_args, _add_sampling_args, _positive_token_count)
from lava_matmulfree.cli.common import (BACKEND_CHOICES, DEFAULT_BACKEND, DEFAULT_FLOAT_DTYPE, LAVA_BACKENDS,
                                        PRINTABLE, SAMPLER_SEED_HELP, _lava_stats, _load_model, _prompt_ids,
                                        _prompt_text, _refuse_lava_run, _run_choice, _run_generation, count,
                                        not_utf8)
from lava_matmulfree.errors import ConfigError
from lava_matmulfree.utils.limits import check_generation

FLOAT_DTYPES = ("float32", "float64")
DEFAULT_CHAT_PROMPT_TOKENS = 256
#: A prompt this long on a Lava backend gets a progress bar while it enters the graph, one token a step (4000
#: tokens: 15 s on the demo model's sim-fused graph, 106 s on sim, before the first new token; docs/cli.md).
PROMPT_PROGRESS_TOKENS = 256
#: A chat line that is one of these words is a command, not a prompt; '//' sends a line that starts with '/'.
CHAT_COMMANDS = {"/reset": "start a new conversation (the MLGRU state h back to zero)",
                 "/help": "list the commands",
                 "/quit": "end the session (as EOF does)"}


def add_parser(sub):
    g = _add_model_command(sub, "generate", cmd_generate, SAMPLER_SEED_HELP, help="generate text from a prompt",
                           description="Generate text on one backend. The prompt and the new text go to stdout (the "
                                       "text streams as the graph chooses each token); backend, tokens/s and for "
                                       "Lava the time steps and processes go to stderr.")
    _add_generation_args(g, BACKEND_CHOICES, DEFAULT_BACKEND)
    g.add_argument("--float-dtype", choices=FLOAT_DTYPES, default=None,
                   help=f"arithmetic of the float backend (default: {DEFAULT_FLOAT_DTYPE}; the sim-float backends "
                        "run float64)")


def add_chat_parser(sub):
    ch = _add_model_command(sub, "chat", cmd_chat, SAMPLER_SEED_HELP,
                            help="answer prompts from stdin in one Lava runtime (state kept between them)",
                            description="Read prompts from stdin, one per line, and stream each answer to stdout as "
                                        "the graph chooses its tokens. One compiled graph and one Lava runtime serve "
                                        "every prompt; the MLGRU state h carries over from one prompt to the next (a "
                                        "conversation) unless --reset-each, or a line '/reset'. End with EOF "
                                        "(Ctrl-D) or '/quit'; '/help' lists the commands.")
    ch.add_argument("--max-new-tokens", type=_positive_token_count, default=DEFAULT_MAX_NEW_TOKENS, metavar="N",
                    help=f"tokens per answer (default: {DEFAULT_MAX_NEW_TOKENS})")
    ch.add_argument("--max-prompt-tokens", type=_positive_token_count, default=DEFAULT_CHAT_PROMPT_TOKENS,
                    metavar="N",
                    help=f"longest prompt in tokens (default: {DEFAULT_CHAT_PROMPT_TOKENS})")
    _add_sampling_args(ch)
    _add_run_choice_args(ch, LAVA_BACKENDS, DEFAULT_BACKEND)
    ch.add_argument("--reset-each", action="store_true", help="start every prompt from the zero state")


def rate(x: float) -> str:
    """A rate with three significant digits, however slow (0.0187, not 0.0) or fast (159, not 159.1)."""
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


class OutputClosed(BaseException):
    """The reader of the generated text went away (``generate ... | head``): a BaseException, so the run stops
    at once instead of finishing a request no one reads (a callback's Exception lets it run to its end)."""


def _write_out(out, text: str) -> None:
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        raise OutputClosed() from None


class _TextStream:
    """The new tokens' text on ``out`` as the graph chooses them: decoded as soon as a token completes a
    character, terminal control characters replaced; nothing after the token ``eos``."""

    def __init__(self, tokenizer, out, eos=None):
        self.decoder, self.out, self.eos, self.ended = tokenizer.stream_decoder(), out, eos, False

    def on_token(self, t: int):
        if self.ended:  # the Lava backends run to max_new_tokens; nothing after the end of sequence is shown
            return
        self.ended = t == self.eos
        text = self.decoder.push(t)
        if text:
            self._write(text)

    def close(self):
        self._write(self.decoder.flush() + "\n")

    def _write(self, text: str):
        _write_out(self.out, text.translate(PRINTABLE))


def cmd_generate(args, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    _prompt_text(args)  # before any work
    backend, run = _run_choice(args)
    if args.float_dtype is not None and backend != "float":
        raise ValueError(f"--float-dtype is the float backend's arithmetic; backend {backend} does not read it")
    # at most one token per byte, and <s>: what the run is sized for
    _refuse_lava_run(args, backend, run, args.max_new_tokens, len(args.prompt.encode("utf-8")) + 1)
    m = _load_model(args, backend)
    eos = m.cfg.eos_token_id if m.cfg.eos_token_id >= 0 else m.tokenizer.eos_token_id  # the model's config first
    stream = _TextStream(m.tokenizer, out, eos)
    prompt = _prompt_ids(args, m)
    check_generation(m.cfg, len(prompt), args.max_new_tokens, "--max-new-tokens")  # before the echo
    print(f"[{m.what}, backend {backend}]", file=err)
    echo = _PromptEcho(args.prompt, out)
    if args.max_new_tokens == 0:
        echo.write()
        out.write("\n")
        return 0
    bar, on_prompt = None, None
    if backend not in LAVA_BACKENDS:
        echo.write()
    elif len(prompt) >= PROMPT_PROGRESS_TOKENS:
        bar = _PromptProgress(len(prompt), err, echo.write)  # the echo waits for the bar's end
        on_prompt = bar.update
    else:  # the echo waits for the run's first step: a warning of a slow run comes before it, on its own line
        on_prompt = lambda entered: echo.write()  # noqa: E731
    try:
        _, gen = _run_generation(args, backend, run, m, on_token=lambda t: (echo.write(), stream.on_token(t)),
                                 on_prompt=on_prompt, prompt=prompt)
    except BaseException as e:
        if bar is not None:
            bar.close()
        if echo.written and not isinstance(e, OutputClosed):
            out.write("\n")  # the echoed prompt's line ends before the error line
            out.flush()
        raise
    stream.close()
    print(f"backend {backend}: {count(len(prompt), 'prompt token')}, {count(len(gen.tokens), 'new token')} in "
          f"{gen.seconds:.3f} s{_rates(gen)}{_lava_stats(gen)}", file=err)
    return 0


class _PromptEcho:
    """The prompt on stdout, once."""

    def __init__(self, text: str, out):
        self.text, self.out, self.written = text, out, False

    def write(self):
        if not self.written:
            self.written = True
            _write_out(self.out, self.text.translate(PRINTABLE))


class _PromptProgress:
    """A progress bar on stderr while a long prompt enters the Lava graph; when it is in, the bar goes and
    ``then()`` runs (the prompt's echo: on a terminal the bar would otherwise overwrite its line)."""

    def __init__(self, total: int, err, then):
        from lava_matmulfree.utils.progress import progress

        self.bar = progress(total=total, desc="prompt", unit="tok", file=err, leave=False)
        self.then = then

    def update(self, entered: int):
        if self.bar is None:
            return
        self.bar.update(entered - self.bar.n)
        if entered >= self.bar.total:
            self.close()
            self.then()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _rates(gen) -> str:
    """The first token's wait (start-up and prompt) apart from the rate of the tokens after it, where both are
    known: on a small model the start-up is most of a short run, and one rate over both hides the decoding."""
    decode = gen.decode_tokens_per_second
    if decode is None:
        return f" ({rate(gen.tokens_per_second)} tokens/s)"
    return (f": the first after {gen.first_token_seconds:.3f} s (start-up and the prompt), then "
            f"{rate(decode)} tokens/s")


def _chat_command(text: str, err) -> str | None:
    """The command a chat line is (help printed here; an unknown one refused with one error line: '' then), or None
    for a prompt."""
    word = text.strip()
    if not word.startswith("/") or word.startswith("//") or " " in word:
        return None
    if word == "/help":
        for name, what in CHAT_COMMANDS.items():
            print(f"  {name:7} {what}", file=err)
        print("  a line that starts with '//' is sent as a prompt that starts with '/'", file=err)
    elif word not in CHAT_COMMANDS:
        print(f"error: unknown command {word} (commands: {', '.join(CHAT_COMMANDS)}; '//' sends a line that starts "
              "with '/'); not sent", file=err)
        return ""
    return word


def cmd_chat(args, inp=None, out=None, err=None) -> int:
    from lava_matmulfree.graph.session import Session

    inp, out, err = inp or sys.stdin, out or sys.stdout, err or sys.stderr
    if inp is sys.stdin and hasattr(inp, "reconfigure"):
        inp.reconfigure(errors="surrogateescape")  # a line that is not UTF-8 is refused alone, not the session
    backend, run = _run_choice(args)
    if backend not in LAVA_BACKENDS:
        raise ConfigError(f"--run-config {args.run_config}: names backend {backend!r}; chat runs a Lava backend "
                          f"({', '.join(LAVA_BACKENDS)})")
    _refuse_lava_run(args, backend, run, args.max_new_tokens, args.max_prompt_tokens, reference=False)
    m = _load_model(args, backend)
    check_generation(m.cfg, 0, args.max_prompt_tokens + args.max_new_tokens, "--max-prompt-tokens + --max-new-tokens")
    interactive = inp.isatty()
    print(f"[{m.what}, backend {backend}; one runtime for every prompt; '/reset' starts over, '/help' lists "
          "the commands, EOF or '/quit' ends]", file=err)
    with Session(backend, m.net, capacity=args.max_prompt_tokens + args.max_new_tokens,
                 temperature=args.temperature, top_k=args.top_k, seed=args.seed, float_model=m.float_model,
                 run=run) as chat:
        reset = True
        while True:
            if interactive:
                err.write("> ")
                err.flush()
            line = inp.readline()
            if not line:
                break
            text = line.rstrip("\r\n")  # a Windows line end is no part of the prompt
            command = _chat_command(text, err)
            if command == "/quit":
                break
            if command == "/reset":
                reset = True
                print("[state reset]", file=err)
            if command is not None:
                continue
            if text.startswith("//"):
                text = text[1:]
            if not text.strip():
                continue  # an empty line is no prompt
            where = not_utf8(text)
            if where:
                print(f"error: the line is not UTF-8 text ({where}); not sent", file=err)
                continue
            prompt = m.tokenizer.encode(text, add_bos=reset)
            if not prompt:
                continue
            if len(prompt) > args.max_prompt_tokens:
                print(f"error: the prompt has {len(prompt)} tokens, more than --max-prompt-tokens "
                      f"{args.max_prompt_tokens}; not sent", file=err)
                continue
            stream = _TextStream(m.tokenizer, out)
            gen = chat.ask(prompt, args.max_new_tokens, on_token=stream.on_token, reset=reset or args.reset_each)
            stream.close()
            first = "" if gen.first_token_seconds is None else f", first token after {gen.first_token_seconds:.3f} s"
            if gen.decode_tokens_per_second is not None:
                first += f", then {rate(gen.decode_tokens_per_second)} tokens/s"
            print(f"[{count(len(prompt), 'prompt token')}, {count(len(gen.tokens), 'new token')} in "
                  f"{gen.seconds:.3f} s{first}]",
                  file=err)
            reset = False
    return 0
