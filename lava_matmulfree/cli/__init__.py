"""The ``lava-matmulfree`` command line.

    lava-matmulfree generate  [MODEL] [--backend B | --run-config NAME] [--prompt TEXT] [--max-new-tokens N] ...
    lava-matmulfree probe     [MODEL] [--backend B] [--vars l0.h,l1.h] [--out PREFIX]   -> PREFIX.npz, PREFIX.png
    lava-matmulfree profile   [MODEL] [--prompt TEXT | --text FILE] [--tokens N] [--out PREFIX] -> PREFIX.json, .png
    lava-matmulfree eval      [MODEL] [--text FILE] [--set knob=value ...] [--json PATH]
    lava-matmulfree compile   [MODEL] --out FILE.safetensors [--calib-text FILE]
    lava-matmulfree estimate  [--config NAME] [--out DIR] [--preset paper|project] [--json FILE] [--set NAME=VALUE]
                              [--sensitivity]
    lava-matmulfree info      [MODEL]

MODEL: ``--checkpoint`` (a Hugging Face folder, calibrated on random sequences and compiled; a
``compiled.safetensors`` inside it or a compiled ``.safetensors`` file is used as is) or ``--config NAME``
with ``--seed`` (seeded random weights); without either, the demo model in lava_matmulfree/data/demo_model
when present, else random weights of the tiny config.

Generated text goes to stdout (prompt first); timing and statistics go to stderr so that stdout holds
only text. Every user error (:class:`LmfError`, bad argument values) prints one ``error: ...`` line to
stderr and exits with status 2, without a traceback. Heavy modules (numpy, safetensors, lava) are imported
only by the subcommand that needs them.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import NoReturn

from lava_matmulfree.cli import compile, estimate, eval, info, probe, profile, train
from lava_matmulfree.cli.arguments import _Parser, _UsageError
from lava_matmulfree.cli.generate import OutputClosed, add_chat_parser, cmd_chat, cmd_generate
from lava_matmulfree.cli.generate import add_parser as add_generate_parser
from lava_matmulfree.errors import LmfError

__all__ = ["build_parser", "cmd_chat", "cmd_generate", "main"]  # the commands that stream are called from Python too

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention
# each command's parser, in the order --help lists them
ADD_PARSERS = (add_generate_parser, probe.add_parser, profile.add_parser, eval.add_parser, compile.add_parser,
               estimate.add_parser, add_chat_parser, info.add_parser, train.add_parser)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lava-matmulfree",
                description="A MatMul-free language model (HGRN-Bit / MMfreeLM) as a Lava process graph for Loihi 2.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add_parser in ADD_PARSERS:
        add_parser(sub)
    return p


# ----------------------------------------------------------------------------------------- entry point
class _StderrHandler(logging.Handler):
    """Package warnings (e.g. ignored checkpoint tensors) as ``warning: ...`` lines on the current stderr."""

    def emit(self, record):
        print("warning: " + record.getMessage(), file=sys.stderr)


def _show_warnings():
    pkg = logging.getLogger("lava_matmulfree")
    if not any(isinstance(h, _StderrHandler) for h in pkg.handlers):
        h = _StderrHandler(level=logging.WARNING)
        pkg.addHandler(h)


def _fail(message: str) -> NoReturn:
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _stopped_by(signum: int) -> NoReturn:
    """The run ended by a signal: say so, and exit with the shell's status for it (128 + the signal)."""
    if signum == signal.SIGINT:
        print("\nstopped by SIGINT", file=sys.stderr)  # on a line of its own after the terminal's ^C
        raise SystemExit(EXIT_INTERRUPTED)
    from lava_matmulfree.graph.signals import Terminated

    stop = Terminated(signum)
    print(f"stopped by {stop.name}", file=sys.stderr)
    raise SystemExit(stop.exit_status)


def _stopped_by_a_noted_signal() -> None:
    """A SIGTERM or SIGHUP to the whole process group during a runtime's start-up kills Lava's shared-memory
    manager while this process's handler waits for a fork to end: the error that follows (a reset connection)
    is the signal's doing. Report the signal, with its exit status."""
    from lava_matmulfree.graph.signals import TERMINATION_SIGNALS, noted_signal

    signum = noted_signal()
    if signum in TERMINATION_SIGNALS + (signal.SIGINT,):
        _stopped_by(signum)


def main(argv=None) -> int:
    """Console entry point; returns 0 on success, raises SystemExit(2) after one ``error:`` line otherwise."""
    _show_warnings()
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # never die on a character the terminal's encoding lacks
        reconfigure(errors="backslashreplace")
    from lava_matmulfree.graph.runtime import Terminated, termination_signals
    from lava_matmulfree.graph.signals import noted_signal

    noted_signal(forget=True)

    program = argv is None  # the command line itself, not a call from Python (tests, notebooks)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        with termination_signals():  # SIGTERM / SIGHUP unwind like Ctrl-C: the Lava runtime is always stopped
            if argv[:1] == ["train"]:  # every option belongs to the trainer's own parser (cli/train.py)
                return train.cmd_train(argparse.Namespace(train_args=argv[1:]))
            parser = build_parser()
            args, extra = parser.parse_known_args(argv)
            if extra:  # argparse would name the program, not the subcommand whose options these are not
                prog = f"{parser.prog} {args.command}"
                raise _UsageError(f"{prog}: unrecognized arguments: {' '.join(extra)} (see {prog} --help)")
            return args.func(args)
    except (_UsageError, LmfError, ValueError) as e:
        _stopped_by_a_noted_signal()
        _fail(str(e))
    except MemoryError:
        _fail("out of memory: the request is too large for this machine")
    except KeyboardInterrupt:
        _stopped_by(signal.SIGINT)
    except Terminated as e:
        _stopped_by(e.signum)
    except (BrokenPipeError, OutputClosed):  # piped into `head`: stop quietly (and keep the final flush quiet)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise SystemExit(0)
    except OSError as e:  # a file the code above did not check itself: still one line naming it
        _stopped_by_a_noted_signal()
        _fail(f"{e.filename}: {e.strerror}" if e.filename is not None else str(e))
    finally:
        if program:  # no descendant outlives the command line: Python's resource tracker finishes first
            from lava_matmulfree.graph.signals import release_resource_tracker

            release_resource_tracker()


if __name__ == "__main__":
    sys.exit(main())
