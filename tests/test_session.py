"""Streaming and sessions on the Lava backends: tokens reach the caller while the graph runs (Lava's Extractor on
the sink), and one graph with one runtime answers several prompts, continuing or resetting the recurrent state.
Every test that starts a Lava runtime has a hard timeout."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest

from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.backends import generate, lava_run_config
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.graph.builder import build_graph
from lava_matmulfree.graph.runner import GraphRunner
from lava_matmulfree.graph.session import Session

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def net():
    return build_evaluation("tiny", seed=0).net


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", ["sim-fused", pytest.param("sim", marks=pytest.mark.slow)])
def test_tokens_reach_the_caller_while_the_graph_runs(net, backend):
    """Each token is handed over while Lava's runtime is running (a non-blocking run not yet waited for), in
    order, equal to the golden model's; the last one included."""
    prompt, n = [5, 17, 99, 3], 6
    ref = generate("reference", net, prompt, n)
    from lava_matmulfree.graph.backends import GRAPH_KIND

    g = build_graph(net, GRAPH_KIND[backend], capacity=len(prompt) + n, stream=True)
    seen, running = [], []

    def on_token(t):
        seen.append(t)
        running.append(bool(g.source.runtime._is_running))

    with GraphRunner(g, lava_run_config(backend), timeout=200) as runner:
        res = runner.generate(prompt, n, on_token=on_token)
    assert seen == ref.tokens == res.tokens
    assert all(running), running
    assert 0 < res.first_token_seconds < res.seconds


@pytest.mark.timeout(300)
def test_a_session_answers_several_prompts_in_one_runtime(net):
    """A fresh conversation equals a separate generate call; a continued one equals the golden model continued
    from the state the previous request left (its prompt and every new token but the last entered the graph)."""
    p1, p2 = [5, 17, 99, 3], [42, 8, 250]
    ref1, ref2 = generate("reference", net, p1, 4), generate("reference", net, p2, 3)
    streamed = []
    with Session("sim-fused", net, capacity=12) as chat:
        a1 = chat.ask(p1, 4, on_token=streamed.append)
        a2 = chat.ask(p2, 3, reset=True)
        a3 = chat.ask(p2, 3)
        runtime = chat.graph.source.runtime
    assert a1.tokens == ref1.tokens == streamed and a2.tokens == ref2.tokens
    np.testing.assert_array_equal(a1.logits, ref1.logits)
    np.testing.assert_array_equal(a2.logits, ref2.logits)
    gm = GoldenModel(net)
    _, state = gm.prefill(p2 + ref2.tokens[:-1])
    logits, _ = gm.prefill(p2, state)
    np.testing.assert_array_equal(a3.logits[:len(p2)], logits)
    assert a3.tokens[0] == int(np.argmax(logits[-1]))
    assert a2.seconds < a1.seconds  # no compile or start-up after the first request
    assert not runtime._is_started  # stopped on exit


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_decomposed_session_resets_through_the_leaf_state(net):
    """On the decomposed graph the reset reaches the MLGRU leaves (through the blocks' aliased h)."""
    p = [9, 100, 31]
    ref = generate("reference", net, p, 2)
    with Session("sim", net, capacity=6) as chat:
        first = chat.ask(p, 2)
        again = chat.ask(p, 2, reset=True)
    assert first.tokens == again.tokens == ref.tokens
    np.testing.assert_array_equal(again.logits, ref.logits)


def test_a_session_needs_a_lava_backend(net):
    from lava_matmulfree.errors import BackendError

    with pytest.raises(BackendError, match="Lava backend"):
        Session("reference", net, capacity=4)


@pytest.mark.timeout(300)
def test_chat_cli_streams_answers_in_one_runtime(capsys):
    """`chat` answers each line; '/reset' starts over, so the same prompt gets the same answer; each answer is
    what `generate` gives for that prompt from the same state."""
    from lava_matmulfree.cli import cmd_chat, build_parser

    args = build_parser().parse_args(["chat", "--config", "tiny", "--max-new-tokens", "5", "--temperature", "0"])
    out, err = io.StringIO(), io.StringIO()
    assert cmd_chat(args, inp=io.StringIO("ab\nxyz\n/reset\nab\n"), out=out, err=err) == 0
    answers = out.getvalue().split("\n")
    assert answers[0] == answers[2] and len(answers) == 4 and answers[3] == ""
    log = err.getvalue()
    assert log.count("new tokens") == 3 and "[state reset]" in log
    assert log.count(" tokens/s]") == 3  # each answer's rate after its first token
    from lava_matmulfree.cli import main

    capsys.readouterr()
    main(["generate", "--config", "tiny", "--prompt", "ab", "--max-new-tokens", "5", "--temperature", "0",
          "--backend", "reference"])
    assert capsys.readouterr().out == "ab" + answers[0] + "\n"


@pytest.mark.timeout(300)
def test_chat_commands_empty_lines_and_windows_line_ends(capsys):
    """'/help' lists the commands, an unknown '/word' gets one error line, an empty line sends nothing, '//x' sends
    '/x', '/quit' ends the session before the lines after it; "ab\r\n" is the prompt "ab" (the answer generate
    gives for "ab")."""
    from lava_matmulfree.cli import build_parser, cmd_chat, main

    args = build_parser().parse_args(["chat", "--config", "tiny", "--max-new-tokens", "5", "--temperature", "0"])
    out, err = io.StringIO(), io.StringIO()
    assert cmd_chat(args, inp=io.StringIO("ab\r\n/help\n\n  \n/nope\n//x\n/quit\nxyz\n"), out=out, err=err) == 0
    answers, log = out.getvalue().split("\n"), err.getvalue()
    assert len(answers) == 3 and answers[2] == "" and log.count("new tokens in") == 2, log
    assert "[3 prompt tokens," in log and "[2 prompt tokens," in log  # "<s>ab", then "/x" (no <s>: no reset)
    assert all(f"  {c}" in log for c in ("/reset", "/help", "/quit"))
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown command /nope (commands: /reset, /help, /quit; '//' sends a line that starts "
                      "with '/'); not sent"]
    capsys.readouterr()
    main(["generate", "--config", "tiny", "--prompt", "ab", "--max-new-tokens", "5", "--temperature", "0",
          "--backend", "reference"])
    assert capsys.readouterr().out == "ab" + answers[0] + "\n"


def test_chat_names_no_backend_it_does_not_take(capsys, monkeypatch):
    """A chat no Lava backend can hold is refused without the advice to use reference (chat refuses it); its token
    counts have generate's cap."""
    from lava_matmulfree.cli import main
    from lava_matmulfree.graph import plan

    monkeypatch.setattr(plan, "available_memory", lambda: 2 ** 20)
    with pytest.raises(SystemExit):
        main(["chat", "--config", "tiny"])
    err = capsys.readouterr().err
    assert "no Lava backend fits" in err and "reference" not in err, err
    for option in ("--max-new-tokens", "--max-prompt-tokens"):
        with pytest.raises(SystemExit):
            main(["chat", option, str(2 ** 40)])
        assert "at most 1048576 tokens" in capsys.readouterr().err
    monkeypatch.undo()
    with pytest.raises(SystemExit):  # a run config of a backend chat does not run
        main(["chat", "--config", "tiny", "--run-config", "reference"])
    err = capsys.readouterr().err
    assert "--run-config reference: names backend 'reference'; chat runs a Lava backend" in err, err


@pytest.mark.timeout(300)
def test_chat_refuses_a_line_that_is_not_utf8_and_goes_on():
    """A line of stdin that is not UTF-8 gets one error line naming the byte; the lines after it are answered."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "lava_matmulfree", "chat", "--config", "tiny", "--max-new-tokens", "3",
           "--temperature", "0"]
    r = subprocess.run(cmd, input=b"caf\xe9\nab\n", capture_output=True, timeout=240,
                       env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": ""})
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "error: the line is not UTF-8 text (byte e9 at character 3); not sent" in err
    assert err.count("new tokens in") == 1  # "ab" was answered


@pytest.mark.timeout(300)
def test_cli_prints_text_as_the_graph_chooses_it():
    """`generate` on sim-fused: the first new token reaches stdout well before the last (read from the pipe with
    timestamps), and the text equals the reference backend's."""
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "lava_matmulfree", "generate", "--config", "tiny", "--prompt", "ab",
           "--max-new-tokens", "120", "--temperature", "0"]
    proc = subprocess.Popen(cmd + ["--backend", "sim-fused"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    chunks = []
    while True:
        b = proc.stdout.read1(4096)
        if not b:
            break
        chunks.append((time.perf_counter(), b))
    assert proc.wait(timeout=200) == 0
    ref = subprocess.run(cmd + ["--backend", "reference"], capture_output=True, timeout=200).stdout
    assert b"".join(c for _, c in chunks) == ref
    new = [t for t, c in chunks if c not in (b"ab",)]
    assert len(new) >= 3, "the text came in one piece: nothing was streamed"
    assert new[-1] - new[0] > 0.05  # 120 tokens at 3 steps each: the first arrived well before the last


def test_chat_and_generate_keep_no_logits_and_chat_takes_its_time_limit(monkeypatch, tmp_path):
    """The commands show no logits, yet the graph kept them and read them back after the last token, one element
    per message (at a vocabulary of 32000: 38 s of a generation reported as 0.6 s, 2.4 min per chat answer); and
    chat's --timeout never reached its session (the default 900 s ruled every answer)."""
    from lava_matmulfree.cli import build_parser, cmd_chat
    from lava_matmulfree.cli.common import _run_choice
    from lava_matmulfree.graph import session as session_mod

    seen = {}

    class Recorder:
        def __init__(self, backend, net, **kw):
            seen.update(kw)
            raise RuntimeError("recorded")

    monkeypatch.setattr(session_mod, "Session", Recorder)
    args = build_parser().parse_args(["chat", "--config", "tiny", "--timeout", "77"])
    with pytest.raises(RuntimeError, match="recorded"):
        cmd_chat(args, inp=io.StringIO("ab\n"), out=io.StringIO(), err=io.StringIO())
    assert seen["run"].timeout_s == 77 and seen["run"].record_logits is False
    toml = tmp_path / "run.toml"
    toml.write_text('[run]\nbackend = "sim"\nrecord_logits = true\ntimeout_s = 55\n')
    seen.clear()
    args = build_parser().parse_args(["chat", "--config", "tiny", "--run-config", str(toml)])  # as generate takes
    with pytest.raises(RuntimeError, match="recorded"):
        cmd_chat(args, inp=io.StringIO("ab\n"), out=io.StringIO(), err=io.StringIO())
    assert (seen["run"].backend, seen["run"].timeout_s, seen["run"].record_logits) == ("sim", 55, False)
    for argv in (["generate", "--config", "tiny", "--backend", "sim"],
                 ["generate", "--config", "tiny", "--run-config", str(toml)],
                 ["probe", "--config", "tiny", "--backend", "sim-fused", "--vars", "l0.h"]):
        backend, run = _run_choice(build_parser().parse_args(argv))
        assert run.backend == backend and run.record_logits is False, argv
