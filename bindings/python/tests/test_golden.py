"""The golden suite (tests/golden/suite.json at the repository root) on the Python surface:
the Rust and Node surfaces run the same file, so the three cannot drift."""

import json
import pathlib

import pytest

import aegis
from conftest import run

SUITE = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "tests" / "golden" / "suite.json").read_text()
)


async def chat(pipeline, request):
    try:
        out = await pipeline.chat(request)
    except aegis.AegisError as e:
        return {"error": e.kind}
    if out.get("object") == "aegis.run":
        return {"status": out["status"]}
    return {"content": out["choices"][0]["message"]["content"]}


@pytest.mark.parametrize("case", SUITE["cases"], ids=[c["name"] for c in SUITE["cases"]])
def test_golden_case(case):
    pipeline = aegis.Pipeline.from_toml(case["config"])
    if "chat" in case:
        assert run(chat(pipeline, case["chat"])) == case["expect_chat"]
    if "scan" in case:
        report = pipeline.scan(case["scan"]["text"], stage=case["scan"]["stage"])
        got = {"verdict": report["verdict"], "sanitized": report["sanitized"],
               "kinds": [f["kind"] for f in report["findings"]]}
        assert got == case["expect_scan"]
