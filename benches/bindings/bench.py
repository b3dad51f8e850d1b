"""The Python side of the bindings bench (`benches/bindings/run.sh`): governed echo calls
through `aegis` (the installed wheel), the same cases as baseline.rs, plus a guard written in
Python. Prints one JSON line per case: p50 / p99 in microseconds."""

import asyncio
import json
import time

import aegis

N, WARM = int(__import__("os").environ.get("AEGIS_BENCH_N", 5000)), 500
ECHO = '[[providers]]\nid = "local"\ntype = "echo"\n'
PROMPT = "x " * 512


class Allow:
    stages = ["input"]

    def __init__(self, config):
        pass

    def check(self, subject, ctx):
        return aegis.Verdict.allow()


aegis.register_guard("bench_allow", Allow)


def percentiles(ns):
    ns.sort()
    at = lambda p: ns[min(int(len(ns) * p), len(ns) - 1)] / 1000.0  # noqa: E731
    return at(0.50), at(0.99)


async def case(name, toml):
    p = aegis.Pipeline.from_toml(toml)
    request = {"model": "local/echo-1", "messages": [{"role": "user", "content": PROMPT}]}
    for _ in range(WARM):
        await p.chat(request)
    ns = []
    for _ in range(N):
        started = time.perf_counter_ns()
        await p.chat(request)
        ns.append(time.perf_counter_ns() - started)
    p50, p99 = percentiles(ns)
    print(json.dumps({"surface": "python", "case": name, "p50_us": round(p50, 1), "p99_us": round(p99, 1)}))


async def main():
    await case("echo, default graph, no guards", ECHO)
    await case("echo + one input guard (built-in ban_substrings)",
               ECHO + '[[guardrails]]\nid = "words"\ntype = "ban_substrings"\nstages = ["input"]\n'
                      'config = { substrings = ["forbidden"] }\n')
    await case("echo + one input guard written in Python (allows)",
               ECHO + '[[guardrails]]\nid = "py"\ntype = "bench_allow"\n')


asyncio.run(main())
