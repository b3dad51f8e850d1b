import asyncio
import time

import pytest


ECHO = """
[[providers]]
id = "local"
type = "echo"
"""


def run(coro):
    """Runs a coroutine on a fresh event loop (each test owns its loop)."""
    return asyncio.run(coro)


def user(text, **extra):
    """An OpenAI-shaped request with one user message to the echo model."""
    return {"model": "local/echo-1", "messages": [{"role": "user", "content": text}], **extra}


def wait_for(predicate, timeout=5.0):
    """Polls `predicate` until it is true (events reach sinks on their own thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def echo_toml():
    return ECHO
