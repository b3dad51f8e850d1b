#!/usr/bin/env python3
"""A guard plugin and a provider plugin for the shipped `aegis` binary, written in Python with
the standard library only: `/check` speaks Aegis's guard protocol (`aegis.guard.v1`) and
`/chat` its provider protocol (`aegis.provider.v1`); see README.md next to this file.

    python3 examples/http-guard/guard_service.py --port 9000

and in the gateway's config:

    [[guardrails]]
    id = "codenames"
    type = "http"
    config = { url = "http://127.0.0.1:9000/check" }

What it decides, to show every verdict but one:
- a text naming a project on the deny list is blocked (`forbidden_project`);
- an internal code name is replaced by `[CODENAME]` (a `sanitize` verdict: edits are byte
  offsets into each segment's UTF-8 text, so Python's character offsets are converted);
- everything else is allowed.
With GUARD_TOKEN set in its environment, calls must carry `Authorization: Bearer <token>`.

The provider (`type = "http"` under `[[providers]]`, `config = { url = ".../chat" }`) answers
every prompt with "service heard: " and the last user message — the prompt as the guards
left it.
"""

import argparse
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROTOCOL = "aegis.guard.v1"
PROVIDER_PROTOCOL = "aegis.provider.v1"
DENIED = re.compile(r"\bproject\s+blackbird\b", re.IGNORECASE)
CODENAMES = re.compile(r"\b(?:Nightingale|Kestrel)\b")


def byte_offset(text, char_index):
    """The UTF-8 byte offset of character `char_index` of `text`."""
    return len(text[:char_index].encode("utf-8"))


def judge(call):
    """The verdict for one `aegis.guard.v1` call."""
    edits, findings = [], []
    for index, segment in enumerate(call["segments"]):
        text = segment["text"]
        if DENIED.search(text):
            return {
                "decision": "block",
                "reason": "names a project on the deny list",
                "code": "forbidden_project",
                "findings": [{"kind": "FORBIDDEN_PROJECT", "score": 1.0, "detector": "deny_list"}],
            }
        for m in CODENAMES.finditer(text):
            start, end = byte_offset(text, m.start()), byte_offset(text, m.end())
            edits.append({"segment": index, "start": start, "end": end, "replacement": "[CODENAME]"})
            findings.append({
                "kind": "CODENAME",
                "span": {"segment": index, "start": start, "end": end},
                "score": 0.9,
                "detector": "codenames",
            })
    if edits:
        return {"decision": "sanitize", "edits": edits, "findings": findings}
    return {"decision": "allow"}


def complete(request):
    """The `chat.completion` for one `aegis.provider.v1` call (an OpenAI request body)."""
    last = [m for m in request["messages"] if m["role"] == "user"][-1]
    content = last["content"]
    if isinstance(content, list):  # content parts
        content = " ".join(p.get("text", "") for p in content)
    answer = "service heard: " + content
    return {
        "id": "chatcmpl-example",
        "object": "chat.completion",
        "created": 0,
        "model": request["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer}}],
        "usage": {"prompt_tokens": len(content.split()), "completion_tokens": len(answer.split()),
                  "total_tokens": len(content.split()) + len(answer.split())},
    }


ROUTES = {"/check": (PROTOCOL, judge), "/chat": (PROVIDER_PROTOCOL, complete)}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        token = os.environ.get("GUARD_TOKEN")
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            return self.answer(401, {"error": "bad token"})
        if self.path not in ROUTES:
            return self.answer(404, {"error": f"POST {' or '.join(ROUTES)}"})
        protocol, handle = ROUTES[self.path]
        if self.headers.get("aegis-protocol") != protocol:
            return self.answer(400, {"error": f"{self.path} speaks {protocol}"})
        try:
            call = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            out = handle(call)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            return self.answer(400, {"error": f"not an {protocol} call: {e}"})
        self.answer(200, out)

    def answer(self, status, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # texts under judgement never go to a log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"guard service on http://{args.host}:{server.server_port}/check", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
