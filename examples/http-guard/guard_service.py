#!/usr/bin/env python3
"""A guard plugin for the shipped `aegis` binary, written in Python with the standard library
only: it speaks Aegis's guard protocol (`aegis.guard.v1`, see README.md next to this file).

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
"""

import argparse
import json
import os
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROTOCOL = "aegis.guard.v1"
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


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        token = os.environ.get("GUARD_TOKEN")
        if token and self.headers.get("Authorization") != f"Bearer {token}":
            return self.answer(401, {"error": "bad token"})
        if self.headers.get("aegis-protocol") != PROTOCOL:
            return self.answer(400, {"error": f"this service speaks {PROTOCOL}"})
        try:
            call = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            verdict = judge(call)
        except (ValueError, KeyError, TypeError) as e:
            return self.answer(400, {"error": f"not an {PROTOCOL} call: {e}"})
        self.answer(200, verdict)

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
