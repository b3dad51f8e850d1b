"""The pipeline from Python: built from TOML or a dict, chat in and out as OpenAI-shaped
dicts, streaming, scan, errors as AegisError with the gateway's kinds and codes."""

import pytest

import aegis
from conftest import ECHO, run, user


def test_chat_returns_an_openai_completion_with_the_runs_metadata():
    p = aegis.Pipeline.from_toml(ECHO)
    out = run(p.chat(user("Hello, Aegis")))
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "echo: Hello, Aegis"}
    assert out["usage"]["total_tokens"] > 0
    assert out["aegis"]["provider"] == "local"
    assert len(out["aegis"]["run_id"]) == 36


def test_from_dict_builds_the_same_pipeline_as_toml():
    p = aegis.Pipeline.from_dict({
        "providers": [{"id": "local", "type": "echo"}],
        "guardrails": [{"id": "pii", "type": "pii"}],
    })
    out = run(p.chat(user("mail ada@example.org")))
    assert out["choices"][0]["message"]["content"] == "echo: mail <EMAIL_ADDRESS>"
    assert out["aegis"]["guards"] == ["pii"]


def test_a_stream_is_an_async_iterator_of_chunks_that_adds_up_to_the_answer():
    p = aegis.Pipeline.from_toml(ECHO)

    async def go():
        stream = await p.chat(user("one two three", stream=True))
        assert isinstance(stream, aegis.ChatStream)
        assert stream.aegis["provider"] == "local"
        text = ""
        async for chunk in stream:
            assert chunk["object"] == "chat.completion.chunk"
            for choice in chunk["choices"]:
                text += choice["delta"].get("content") or ""
        return text

    assert run(go()) == "echo: one two three"


def test_a_blocked_prompt_raises_aegis_error_with_kind_and_code():
    p = aegis.Pipeline.from_toml(ECHO + """
[[guardrails]]
id = "words"
type = "ban_substrings"
config = { substrings = ["forbidden"] }
""")
    with pytest.raises(aegis.AegisError) as e:
        run(p.chat(user("this is forbidden")))
    assert e.value.kind == "policy_blocked"
    assert e.value.status in (400, 403)
    assert e.value.run_id


def test_bad_input_is_a_typed_error_not_a_crash():
    p = aegis.Pipeline.from_toml(ECHO)
    with pytest.raises(aegis.Error) as e:
        run(p.chat({"model": "local/echo-1"}))  # no messages
    assert e.value.kind == "invalid_request"
    with pytest.raises(TypeError):
        run(p.chat({"model": "local/echo-1", "messages": [], "x": object()}))
    with pytest.raises(aegis.AegisError) as e:
        aegis.Pipeline.from_toml("[[providers]]\nid = 1\n")
    assert e.value.kind == "config"
    with pytest.raises(aegis.AegisError) as e:
        p.scan("text", stage="sideways")
    assert e.value.kind == "invalid_request"


def test_scan_reports_findings_at_offsets_of_the_text_as_given():
    p = aegis.Pipeline.from_toml(ECHO + """
[[guardrails]]
id = "pii"
type = "pii"
""")
    text = "reach me at ada@example.org"
    report = p.scan(text)
    assert report["verdict"] == "sanitize"
    email = [f for f in report["findings"] if f["kind"] == "EMAIL_ADDRESS"][0]
    assert text.encode()[email["start"]:email["end"]] == b"ada@example.org"
    assert report["sanitized"] == "reach me at <EMAIL_ADDRESS>"
    assert p.scan("nothing here")["verdict"] == "allow"


def test_a_cancelled_await_ends_its_run_without_hanging():
    import asyncio

    class Sleepy:
        def __init__(self, config):
            pass

        async def check(self, subject, ctx):
            await asyncio.sleep(30)
            return aegis.Verdict.allow()

    aegis.register_guard("sleepy", Sleepy)
    p = aegis.Pipeline.from_toml(ECHO + """
[[guardrails]]
id = "slow"
type = "sleepy"
""")

    async def go():
        task = asyncio.ensure_future(p.chat(user("hi")))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return True

    assert run(asyncio.wait_for(go(), 10))
