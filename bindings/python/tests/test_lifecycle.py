"""How runs end from Python: a stream abandoned mid-way and garbage-collected still ends its
run; async guards run on the caller's loop whatever the input's size; a provider that never
answers is cut off by its deadline and its coroutine cancelled."""

import asyncio
import gc

import pytest

import aegis
from conftest import ECHO, run, user, wait_for

EVENTS = []


class Collect:
    def __init__(self, config):
        pass

    def on_event(self, event):
        EVENTS.append(event)


aegis.register_telemetry("lifecycle_events", Collect)
SINK = '\n[[telemetry]]\nid = "events"\ntype = "lifecycle_events"\n'


def ended(run_id):
    return [e["event"] for e in EVENTS if e["run_id"] == run_id
            and e["event"] in ("completed", "cancelled", "failed", "blocked", "rejected")]


def test_a_stream_abandoned_and_collected_still_ends_its_run():
    p = aegis.Pipeline.from_toml(ECHO + SINK)

    async def go():
        stream = await p.chat(user("one two three four five six", stream=True))
        run_id = stream.aegis["run_id"]
        async for _ in stream:
            break  # abandon it: no aclose()
        del stream
        gc.collect()
        return run_id

    run_id = run(go())
    assert wait_for(lambda: ended(run_id)), "the run ended when its stream was collected"
    assert ended(run_id) == ["cancelled"]


def test_a_stream_read_to_its_end_completes_its_run():
    p = aegis.Pipeline.from_toml(ECHO + SINK)

    async def go():
        stream = await p.chat(user("short", stream=True))
        chunks = [c async for c in stream]
        return stream.aegis["run_id"], chunks

    run_id, chunks = run(go())
    assert chunks and wait_for(lambda: ended(run_id))
    assert ended(run_id) == ["completed"]


def test_an_async_guard_runs_on_the_callers_loop_even_for_a_large_prompt():
    loops = []

    class Async:
        def __init__(self, config):
            pass

        async def check(self, subject, ctx):
            loops.append(asyncio.get_running_loop())
            return aegis.Verdict.allow()

    aegis.register_guard("async_large", Async)
    p = aegis.Pipeline.from_toml(ECHO + '[[guardrails]]\nid = "a"\ntype = "async_large"\n')

    async def go():
        await p.chat(user("word " * 40_000))  # 200 KB
        return asyncio.get_running_loop()

    caller = run(go())
    assert loops and all(loop is caller for loop in loops)


def test_a_provider_that_never_answers_is_cut_off_and_its_coroutine_cancelled():
    cancelled = []

    class Stuck:
        timeout_ms = 300

        def __init__(self, config):
            pass

        async def chat(self, request):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

    aegis.register_provider("stuck", Stuck)
    p = aegis.Pipeline.from_toml('[[providers]]\nid = "s"\ntype = "stuck"\n')

    async def go():
        with pytest.raises(aegis.AegisError) as e:
            await p.chat({"model": "s/x", "messages": [{"role": "user", "content": "hi"}]})
        assert e.value.kind == "timeout"
        # The coroutine is cancelled on this loop shortly after the deadline.
        for _ in range(100):
            if cancelled:
                break
            await asyncio.sleep(0.02)

    run(asyncio.wait_for(go(), 10))
    assert cancelled == [True]


def test_a_plugin_may_call_the_synchronous_api():
    p = aegis.Pipeline.from_toml(ECHO)
    seen = []

    class Nested:
        stages = ["input"]

        def __init__(self, config):
            pass

        def check(self, subject, ctx):
            # Plugins run on blocking threads: a nested synchronous scan is allowed there.
            seen.append(p.scan("nested")["verdict"])
            return aegis.Verdict.allow()

    aegis.register_guard("nested", Nested)
    q = aegis.Pipeline.from_toml(ECHO + '[[guardrails]]\nid = "n"\ntype = "nested"\n')
    assert run(q.chat(user("hi")))["object"] == "chat.completion"
    assert seen == ["allow"]
