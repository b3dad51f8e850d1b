"""Paused runs and decisions, in memory and through a store shared by processes; and a
process that forks after using Aegis (gunicorn --preload, multiprocessing): the child's
calls work — never a hang."""

import multiprocessing
import os

import pytest

import aegis
from conftest import ECHO, run, user

APPROVAL = ECHO + """
[[guardrails]]
id = "wires"
type = "ban_substrings"
stages = ["input"]
config = { substrings = ["wire"], action = "require_approval" }
"""


def test_a_paused_run_resumes_once_on_approval():
    p = aegis.Pipeline.from_toml(APPROVAL)
    paused = run(p.chat(user("wire 100 to bob")))
    assert paused["object"] == "aegis.run" and paused["status"] == "paused"
    out = run(p.resume(paused["id"], "approve"))
    assert out["choices"][0]["message"]["content"] == "echo: wire 100 to bob"
    with pytest.raises(aegis.AegisError) as e:
        run(p.resume(paused["id"], "approve"))
    assert e.value.kind in ("conflict", "not_found")


def test_a_rejected_run_never_reaches_the_provider():
    p = aegis.Pipeline.from_toml(APPROVAL)
    paused = run(p.chat(user("wire it all")))
    with pytest.raises(aegis.AegisError) as e:
        run(p.resume(paused["id"], "reject", reason="no"))
    assert e.value.run_id == paused["id"]


def test_a_bad_decision_is_refused_before_anything_changes():
    p = aegis.Pipeline.from_toml(APPROVAL)
    paused = run(p.chat(user("wire it")))
    with pytest.raises(aegis.AegisError):
        run(p.resume(paused["id"], "maybe"))
    with pytest.raises(aegis.AegisError):
        run(p.resume(paused["id"], "approve", value={"x": 1}))
    # The run is still paused and can be approved.
    assert run(p.resume(paused["id"], "approve"))["object"] == "chat.completion"


def test_a_store_keeps_paused_runs_across_pipelines(tmp_path):
    url = f"sqlite://{tmp_path / 'runs.db'}?mode=rwc"
    first = aegis.Pipeline.from_toml(APPROVAL, store=url)
    paused = run(first.chat(user("wire the deposit")))
    del first
    second = aegis.Pipeline.from_toml(APPROVAL, store=url)
    out = run(second.resume(paused["id"], "approve"))
    assert out["choices"][0]["message"]["content"] == "echo: wire the deposit"


def _child(pipeline, queue):
    try:
        out = run(pipeline.chat(user("from the child")))
        queue.put(("ok", out["choices"][0]["message"]["content"], pipeline.scan("x")["verdict"]))
    except BaseException as e:  # reported to the parent, whatever it is
        queue.put(("error", repr(e)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_uses_a_pipeline_built_before_the_fork():
    p = aegis.Pipeline.from_toml(ECHO)
    assert run(p.chat(user("parent first")))["object"] == "chat.completion"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(p, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the child finished (no hang)"
    assert queue.get(timeout=5) == ("ok", "echo: from the child", "allow")
    # The parent is unaffected.
    assert run(p.chat(user("parent again")))["choices"][0]["message"]["content"] == "echo: parent again"
