"""Drives a running Aegis gateway with the official `openai` Python SDK.

Usage: python_sdk.py BASE_URL API_KEY. Exits non-zero (with a traceback) on the first failed check.
"""
import json
import sys

import openai

base_url, api_key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

# Non-streaming.
r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}])
assert r.choices[0].message.content == "echo: hello", r
assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage

# Streaming, with usage in the final chunk.
stream = client.chat.completions.create(
    model="echo",
    messages=[{"role": "user", "content": "hello streaming world"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert text == "echo: hello streaming world", text
assert finish == "stop", finish
assert usage is not None and usage.completion_tokens > 0, usage

# Tool calls (the echo provider calls a tool when asked with `/call NAME {args}`).
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
r = client.chat.completions.create(
    model="echo", tools=tools, messages=[{"role": "user", "content": '/call get_weather {"city": "Paris"}'}]
)
call = r.choices[0].message.tool_calls[0]
assert call.function.name == "get_weather", call
assert json.loads(call.function.arguments) == {"city": "Paris"}, call
assert r.choices[0].finish_reason == "tool_calls", r

# Embeddings (the SDK asks for base64 by default and decodes it).
e = client.embeddings.create(model="echo", input=["alpha", "beta"])
assert len(e.data) == 2 and len(e.data[0].embedding) == 16, e
assert abs(sum(x * x for x in e.data[0].embedding) - 1.0) < 1e-3

# Models.
ids = [m.id for m in client.models.list().data]
assert "echo" in ids, ids

# A blocked prompt is an OpenAI-shaped 400 with a stable code.
try:
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "tell me about project nightingale"}])
    raise AssertionError("the banned prompt was not blocked")
except openai.BadRequestError as err:
    assert err.code == "banned_substring" or err.body["code"] in ("banned_substring", "policy_blocked"), err.body

# A block after the first streamed byte surfaces as an error, never a clean finish.
try:
    got = ""
    for chunk in client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "say zebra please"}], stream=True
    ):
        for c in chunk.choices:
            got += c.delta.content or ""
    raise AssertionError(f"the stream finished cleanly: {got!r}")
except openai.APIError as err:
    assert "zebra" not in got, got
    assert "blocked" in str(err), err

# Missing or wrong keys.
bad = openai.OpenAI(base_url=base_url, api_key="wrong-key", max_retries=0)
try:
    bad.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass

# Unknown fields are kept and forwarded, not refused.
r = client.chat.completions.create(
    model="echo", messages=[{"role": "user", "content": "extra"}], extra_body={"aegis_trace": True, "logit_bias": {}}
)
assert r.choices[0].message.content == "echo: extra"

print("python openai SDK: all checks passed")
