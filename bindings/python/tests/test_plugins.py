"""Guards, providers, retrievers and telemetry sinks written in Python, registered under
a type name and used from TOML like built-in types — and what happens when they misbehave:
a guard that raises, hangs or answers garbage blocks (per its fail_mode) with the failure
recorded, never a crash."""

import asyncio
import time

import pytest

import aegis
from conftest import ECHO, run, user, wait_for


class Keyword:
    """Blocks a configured word; redacts "secret" by byte offsets."""

    stages = ["input"]

    def __init__(self, config):
        self.word = config.get("word", "forbidden")
        self.seen = []

    def check(self, subject, ctx):
        self.seen.append((subject["stage"], ctx["guard"]))
        for i, segment in enumerate(subject["segments"]):
            text = segment["text"]
            if self.word in text:
                return aegis.Verdict.block(f"mentions {self.word}", code="keyword")
            at = text.find("secret")
            if at >= 0:
                start, end = aegis.Verdict.byte_span(text, at, at + len("secret"))
                return aegis.Verdict.sanitize(
                    [{"segment": i, "start": start, "end": end, "replacement": "[x]"}])
        return aegis.Verdict.allow()


aegis.register_guard("keyword", Keyword)


def guarded(guard_type, extra=""):
    return aegis.Pipeline.from_toml(ECHO + f"""
[[guardrails]]
id = "g"
type = "{guard_type}"
{extra}
""")


def test_a_python_guard_blocks_and_sanitizes_from_toml():
    p = guarded("keyword", 'config = { word = "wire" }')
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat(user("please wire the money")))
    assert e.value.kind == "policy_blocked"
    assert "mentions wire" in str(e.value)
    out = run(p.chat(user("the café secret is out")))
    assert out["choices"][0]["message"]["content"] == "echo: the café [x] is out"


def test_an_async_guard_runs_on_the_callers_loop():
    loops = []

    class AsyncGuard:
        def __init__(self, config):
            pass

        async def check(self, subject, ctx):
            loops.append(asyncio.get_running_loop())
            await asyncio.sleep(0)
            return aegis.Verdict.allow()

    aegis.register_guard("async_guard", AsyncGuard)
    p = guarded("async_guard")

    async def go():
        await p.chat(user("hi"))
        return asyncio.get_running_loop()

    caller = run(go())
    assert loops and loops[0] is caller


@pytest.mark.parametrize("behaviour", ["raises", "garbage", "bad_edit", "not_json", "spoofed_code"])
def test_a_misbehaving_guard_fails_closed_with_a_reason(behaviour):
    class Bad:
        def __init__(self, config):
            pass

        def check(self, subject, ctx):
            if behaviour == "raises":
                raise ValueError("boom")
            if behaviour == "garbage":
                return {"decision": "maybe"}
            if behaviour == "bad_edit":
                return aegis.Verdict.sanitize([{"segment": 9, "start": 0, "end": 1, "replacement": ""}])
            if behaviour == "not_json":
                return object()
            return aegis.Verdict.block("x", code="guard_unavailable")

    aegis.register_guard(f"bad_{behaviour}", Bad)
    p = guarded(f"bad_{behaviour}")
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat(user("hello")))
    assert e.value.kind == "policy_blocked"
    assert "fails closed" in str(e.value) or "guard" in str(e.value)
    # fail_mode = "open" lets the same request through.
    p = guarded(f"bad_{behaviour}", 'fail_mode = "open"')
    assert run(p.chat(user("hello")))["choices"][0]["message"]["content"] == "echo: hello"


def test_a_hanging_guard_is_cut_off_by_its_deadline():
    class Hangs:
        def __init__(self, config):
            pass

        def check(self, subject, ctx):
            time.sleep(3)
            return aegis.Verdict.allow()

    aegis.register_guard("hangs", Hangs)
    p = guarded("hangs", "timeout_ms = 200")
    started = time.monotonic()
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat(user("hello")))
    assert e.value.kind == "policy_blocked"
    assert time.monotonic() - started < 2.5


def test_a_guard_failure_is_an_audit_event_a_python_sink_receives():
    events = []

    class Sink:
        def __init__(self, config):
            pass

        def on_event(self, event):
            events.append(event)

    class Raises:
        def __init__(self, config):
            pass

        def check(self, subject, ctx):
            raise RuntimeError("down")

    aegis.register_telemetry("collect", Sink)
    aegis.register_guard("raises", Raises)
    p = aegis.Pipeline.from_toml(ECHO + """
[[guardrails]]
id = "fragile"
type = "raises"

[[telemetry]]
id = "audit"
type = "collect"
""")
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat(user("hello")))
    run_id = e.value.run_id

    def verdict_recorded():
        return any(ev["run_id"] == run_id and "guard_unavailable" in str(ev) for ev in events)

    assert wait_for(verdict_recorded), events


def test_a_builtin_type_name_cannot_be_taken():
    with pytest.raises(aegis.AegisError) as e:
        aegis.register_guard("pii", Keyword)
    assert e.value.kind == "invalid_request"
    with pytest.raises(aegis.AegisError):
        aegis.register_guard("bad name!", Keyword)


def test_a_plugin_whose_constructor_raises_fails_the_build_clearly():
    class Refuses:
        def __init__(self, config):
            raise KeyError("needs an endpoint")

    aegis.register_guard("refuses", Refuses)
    with pytest.raises(aegis.AegisError) as e:
        guarded("refuses")
    assert "refuses" in str(e.value) and "KeyError" in str(e.value)


class Shouty:
    """A provider: answers in capitals, reporting usage."""

    def __init__(self, config):
        self.prefix = config.get("prefix", "")

    async def chat(self, request):
        text = request["messages"][-1]["content"]
        return {
            "id": "shout-1",
            "object": "chat.completion",
            "created": 0,
            "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.prefix + text.upper()}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }


aegis.register_provider("shouty", Shouty)

SHOUTY = """
[[providers]]
id = "loud"
type = "shouty"
config = { prefix = "> " }

[[guardrails]]
id = "pii"
type = "pii"
"""


def test_a_python_provider_answers_behind_the_guard_chain():
    p = aegis.Pipeline.from_toml(SHOUTY)
    out = run(p.chat({"model": "loud/any", "messages": [{"role": "user", "content": "hi ada@example.org"}]}))
    # The prompt was masked before the provider saw it; the answer is the provider's.
    assert out["choices"][0]["message"]["content"] == "> HI <EMAIL_ADDRESS>"
    assert out["usage"]["total_tokens"] == 5
    assert out["aegis"]["provider"] == "loud"


def test_a_python_provider_streams_as_one_chunk():
    p = aegis.Pipeline.from_toml(SHOUTY)

    async def go():
        stream = await p.chat({"model": "loud/any", "stream": True,
                               "messages": [{"role": "user", "content": "hey"}]})
        return [c async for c in stream]

    chunks = run(go())
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    assert text == "> HEY"


def test_a_provider_answering_garbage_is_a_provider_error():
    class Broken:
        def __init__(self, config):
            pass

        def chat(self, request):
            return {"choices": "none"}

    aegis.register_provider("broken", Broken)
    p = aegis.Pipeline.from_toml('[[providers]]\nid = "b"\ntype = "broken"\n')
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat({"model": "b/x", "messages": [{"role": "user", "content": "hi"}]}))
    assert e.value.kind == "provider"


def test_a_secret_in_a_plugins_exception_never_reaches_the_error():
    key = "sk-proj-7fQ2xLm9Rt4Vb8Nc1Zd6Hj3Kp5Ws0YgE2uA9iOqTr"

    class Leaky:
        def __init__(self, config):
            pass

        def chat(self, request):
            raise ConnectionError(f"upstream said 401 for Authorization: Bearer {key}")

    aegis.register_provider("leaky", Leaky)
    p = aegis.Pipeline.from_toml('[[providers]]\nid = "l"\ntype = "leaky"\n')
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat({"model": "l/x", "messages": [{"role": "user", "content": "hi"}]}))
    assert e.value.kind == "provider"
    assert "raised ConnectionError: upstream said 401" in str(e.value)
    assert key not in str(e.value) and "[REDACTED:" in str(e.value)
