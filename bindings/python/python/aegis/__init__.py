"""Aegis in-process: the governed LLM pipeline, from Python.

Build a :class:`Pipeline` from the same TOML the gateway reads, and every ``chat`` call
passes the same guard chain, routing, budgets, approvals and audit — decided by the same
Rust code. Guards, providers and retrievers written in Python plug in under a type name
and are then used from TOML like the built-in ones::

    import aegis

    class NoPasswords:
        def __init__(self, config):
            self.word = config.get("word", "password")

        def check(self, subject, ctx):
            for i, segment in enumerate(subject["segments"]):
                if self.word in segment["text"].lower():
                    return aegis.Verdict.block("mentions a password", code="password")
            return aegis.Verdict.allow()

    aegis.register_guard("no_passwords", NoPasswords)
    pipeline = aegis.Pipeline.from_toml('''
        [[providers]]
        id = "local"
        type = "echo"

        [[guardrails]]
        id = "pw"
        type = "no_passwords"
    ''')
"""

from . import _aegis
from ._aegis import (
    AegisError,
    ChatStream,
    __version__,
    acl_allows,
    plugin_types,
    register_guard,
    register_provider,
    register_retriever,
    register_telemetry,
)

#: The same class as :class:`AegisError`, for ``except aegis.Error``.
Error = AegisError

__all__ = [
    "AegisError",
    "Error",
    "ChatStream",
    "Pipeline",
    "Verdict",
    "__version__",
    "acl_allows",
    "plugin_types",
    "register_guard",
    "register_provider",
    "register_retriever",
    "register_telemetry",
]


class Verdict(dict):
    """A guard's answer, in the ``aegis.guard.v1`` shape (a dict, so a plain dict of the
    same shape works too). Offsets in ``sanitize`` edits and finding spans are UTF-8 byte
    offsets into the named segment's text; :meth:`byte_span` converts a ``str`` span."""

    @classmethod
    def allow(cls, *, findings=None, score=0.0):
        """Let the subject through (findings are recorded)."""
        return cls(decision="allow", findings=list(findings or []), score=score)

    @classmethod
    def block(cls, reason, *, code="blocked", findings=None, score=1.0):
        """Refuse the subject; ``code`` is the machine-readable reason."""
        return cls(decision="block", reason=reason, code=code,
                   findings=list(findings or []), score=score)

    @classmethod
    def sanitize(cls, edits, *, findings=None, score=1.0):
        """Let an edited subject through: ``edits`` are ``{"segment", "start", "end",
        "replacement"}`` dicts with byte offsets."""
        return cls(decision="sanitize", edits=list(edits),
                   findings=list(findings or []), score=score)

    @classmethod
    def require_approval(cls, reason, *, payload=None, score=1.0):
        """Pause the run until a human decides."""
        return cls(decision="require_approval", reason=reason,
                   payload=payload if payload is not None else {}, score=score)

    @staticmethod
    def byte_span(text, start, end):
        """The UTF-8 byte offsets of the ``str`` slice ``text[start:end]``."""
        head = len(text[:start].encode("utf-8"))
        return head, head + len(text[start:end].encode("utf-8"))


class Pipeline:
    """A governed pipeline built from TOML or a dict, with the built-in plugin types and
    every type registered with :func:`register_guard`, :func:`register_provider` or
    :func:`register_retriever`.

    ``store`` is a database URL (``sqlite://runs.db?mode=rwc``, ``postgres://…``) keeping
    runs, paused approvals and budgets across processes; without one they live in memory.
    After ``os.fork`` a pipeline rebuilds itself from its config on first use in the child.
    """

    __slots__ = ("_native",)

    def __init__(self, native):
        self._native = native

    @classmethod
    def from_toml(cls, text, *, store=None):
        """A pipeline from TOML text (``AEGIS_*`` environment overrides apply)."""
        return cls(_aegis.Pipeline.from_toml(text, store=store))

    @classmethod
    def from_dict(cls, config, *, store=None):
        """A pipeline from a dict shaped like the TOML file."""
        return cls(_aegis.Pipeline.from_dict(config, store=store))

    async def chat(self, request, *, principal=None):
        """Runs an OpenAI-shaped chat request (a dict). Returns a ``chat.completion`` dict
        (Aegis's metadata under ``"aegis"``), a :class:`ChatStream` of
        ``chat.completion.chunk`` dicts when ``request["stream"]`` is true, or — when a
        guard asks for a human decision — a paused run (``{"object": "aegis.run",
        "status": "paused", "id": …}``) to :meth:`resume`. ``principal`` (``{"id", "team",
        "org", "roles", "labels"}``) is the caller the host authenticated. Raises
        :class:`AegisError` (``kind`` = ``policy_blocked``, ``budget_exceeded``, …)."""
        return await self._native.chat(request, principal=principal)

    async def resume(self, run_id, decision="approve", *, reason=None, value=None):
        """Decides a paused run (``approve``, ``reject`` with a ``reason``, ``edit`` with
        the replacement ``value``); returns what :meth:`chat` would have."""
        return await self._native.resume(run_id, decision, reason=reason, value=value)

    def scan(self, text, *, stage="input"):
        """Judges ``text`` with the guard chain as ``stage`` (``input``, ``output``,
        ``tool_result``, ``retrieved``): the report ``aegis scan`` prints (``verdict``,
        ``guard``, ``reason``, ``findings`` with byte offsets, ``sanitized``)."""
        return self._native.scan(text, stage=stage)

    def models(self):
        """The ``provider/model`` names the pipeline routes."""
        return self._native.models()

    def graph_mermaid(self):
        """The lifecycle graph as Mermaid text."""
        return self._native.graph_mermaid()

    def __repr__(self):
        return repr(self._native)
