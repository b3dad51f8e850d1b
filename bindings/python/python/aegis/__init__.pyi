"""Type stubs of the ``aegis`` package."""

from typing import Any, AsyncIterator, Awaitable, Callable, Literal, Mapping, Protocol

__version__: str

Json = dict[str, Any]
Stage = Literal["input", "output", "tool_result", "retrieved"]

class AegisError(Exception):
    """An error of the governed pipeline."""

    kind: str
    """The error class: ``policy_blocked``, ``invalid_request``, ``budget_exceeded``, ..."""
    code: str
    """The stable machine code."""
    run_id: str | None
    """The run the error ended, if any."""
    status: int | None
    """The HTTP status the gateway would answer."""
    details: Any
    """Structured details, if any."""

Error = AegisError

class ChatStream:
    """A streamed answer: ``async for chunk in stream`` yields ``chat.completion.chunk``
    dicts; the run ends when it is exhausted, closed or collected."""

    def __aiter__(self) -> ChatStream: ...
    def __anext__(self) -> Awaitable[Json]: ...
    def aclose(self) -> Awaitable[None]: ...
    @property
    def aegis(self) -> Json:
        """``run_id``, ``provider``, ``guards``, ``region``, ``retrieval``."""

class Pipeline:
    """A governed pipeline built from TOML or a dict."""

    @staticmethod
    def from_toml(text: str, *, store: str | None = None) -> Pipeline: ...
    @staticmethod
    def from_dict(config: Mapping[str, Any], *, store: str | None = None) -> Pipeline: ...
    def chat(
        self, request: Mapping[str, Any], *, principal: Mapping[str, Any] | None = None
    ) -> Awaitable[Json | ChatStream]:
        """A ``chat.completion`` dict, a :class:`ChatStream` (``stream: true``), or a paused
        run (``{"object": "aegis.run", "status": "paused", "id": ...}``)."""
    def resume(
        self,
        run_id: str,
        decision: Literal["approve", "reject", "edit"] = "approve",
        *,
        reason: str | None = None,
        value: Any = None,
    ) -> Awaitable[Json | ChatStream]: ...
    def scan(self, text: str, *, stage: Stage = "input") -> Json: ...
    def models(self) -> list[str]: ...
    def graph_mermaid(self) -> str: ...

class Guard(Protocol):
    """What a guard plugin's instance provides."""

    def check(self, subject: Json, ctx: Json) -> Json | Awaitable[Json]: ...

def register_guard(name: str, factory: Callable[[Json], Guard]) -> None: ...
def register_provider(name: str, factory: Callable[[Json], Any]) -> None: ...
def register_retriever(name: str, factory: Callable[[Json], Any]) -> None: ...
def register_telemetry(name: str, factory: Callable[[Json], Any]) -> None: ...
def acl_allows(acl: Mapping[str, Any], principal: Mapping[str, Any]) -> bool: ...
def plugin_types() -> dict[str, list[str]]: ...

class Verdict(dict[str, Any]):
    """A guard's answer in the ``aegis.guard.v1`` shape."""

    @classmethod
    def allow(cls, *, findings: list[Json] | None = None, score: float = 0.0) -> Verdict: ...
    @classmethod
    def block(
        cls, reason: str, *, code: str = "blocked", findings: list[Json] | None = None,
        score: float = 1.0,
    ) -> Verdict: ...
    @classmethod
    def sanitize(
        cls, edits: list[Json], *, findings: list[Json] | None = None, score: float = 1.0
    ) -> Verdict: ...
    @classmethod
    def require_approval(cls, reason: str, *, payload: Any = None, score: float = 1.0) -> Verdict: ...
    @staticmethod
    def byte_span(text: str, start: int, end: int) -> tuple[int, int]: ...
