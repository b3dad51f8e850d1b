"""Retrievers written in Python, and LangChain's in-memory vector store served as an Aegis
retriever: permissions inside the search, every document through the guard chain, and no
document the caller may not read ever reaching the prompt — even from a store that ignores
permissions."""

import pytest

import aegis
import aegis.langchain
from conftest import run

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore


class BagOfWords(Embeddings):
    """A deterministic embedding: hashed word counts (no model, no numpy)."""

    size = 64

    def _embed(self, text):
        vector = [0.0] * self.size
        for word in text.lower().replace(".", " ").replace("?", " ").split():
            vector[sum(map(ord, word)) % self.size] += 1.0
        return vector

    def embed_documents(self, texts):
        return [self._embed(t) for t in texts]

    def embed_query(self, text):
        return self._embed(text)

ADA = {"id": "ada", "team": "research"}
BOB = {"id": "bob", "team": "sales"}


PROMPTS = []


class Recorder:
    """A provider that keeps every prompt it is sent, so tests see what reached it."""

    def __init__(self, config):
        pass

    def chat(self, request):
        PROMPTS.append(" | ".join(str(m.get("content")) for m in request["messages"]))
        return {"id": "r", "model": request["model"], "created": 0,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}]}


aegis.register_provider("recorder", Recorder)


def pipeline(retriever_type):
    return aegis.Pipeline.from_toml(f"""
[[providers]]
id = "local"
type = "recorder"

[[retrievers]]
id = "docs"
type = "{retriever_type}"

[[guardrails]]
id = "secrets"
type = "secrets"
stages = ["retrieved"]

[[policies]]
id = "rag"
type = "retrieval"
config = {{ retriever = "docs", k = 3 }}
""")


def ask(p, text, principal):
    return run(p.chat({"model": "local/echo-1", "messages": [{"role": "user", "content": text}]},
                      principal=principal))


def langchain_store():
    store = InMemoryVectorStore(BagOfWords())
    store.add_texts(
        [
            "The research roadmap ships the tokenizer in May.",
            "Sales targets for the quarter are confidential.",
            "The staging key is AKIAIOSFODNN7EXAMPLE, do not share.",
            "The cafeteria opens at eight.",
        ],
        metadatas=[
            {"acl": {"teams": ["research"]}, "source": "roadmap.md"},
            {"acl": {"teams": ["sales"]}, "source": "targets.md"},
            {"acl": {"teams": ["research"]}, "source": "keys.md"},
            {"acl": {"public": True}, "source": "notes.md"},
        ],
        ids=["roadmap", "targets", "keys", "cafeteria"],
    )
    return store


def test_a_langchain_store_serves_only_what_the_caller_may_read():
    aegis.langchain.register_store("lc_memory", langchain_store())
    p = pipeline("lc_memory")
    out = ask(p, "what is on the roadmap?", ADA)
    seen = {d["id"]: d for d in out["aegis"]["retrieval"]}
    assert "targets" not in seen, "sales documents never reach a research prompt"
    assert {"roadmap", "cafeteria"} <= set(seen)
    # The document holding a credential was judged and kept out of the prompt.
    assert seen["keys"]["verdict"] != "allowed"
    prompt = PROMPTS[-1]
    assert "AKIAIOSFODNN7EXAMPLE" not in prompt
    assert "tokenizer in May" in prompt
    out = ask(p, "what is on the roadmap?", BOB)
    assert {d["id"] for d in out["aegis"]["retrieval"]} == {"targets", "cafeteria"}


def test_a_store_that_ignores_permissions_still_cannot_leak():
    class Leaky:
        def __init__(self, config):
            pass

        def retrieve(self, query, k, filter, ctx):
            return [
                {"id": "open", "content": "public note", "metadata": {"acl": {"public": True}}},
                {"id": "sales", "content": "sales only", "metadata": {"acl": {"teams": ["sales"]}}},
                {"id": "none", "content": "no acl at all", "metadata": {}},
            ]

    aegis.register_retriever("leaky", Leaky)
    out = ask(pipeline("leaky"), "anything", ADA)
    assert [d["id"] for d in out["aegis"]["retrieval"]] == ["open"]
    assert "public note" in PROMPTS[-1]
    assert "sales only" not in PROMPTS[-1] and "no acl at all" not in PROMPTS[-1]


def test_retrieval_without_a_principal_is_an_error_not_an_unfiltered_result():
    aegis.langchain.register_store("lc_memory2", langchain_store())
    p = pipeline("lc_memory2")
    with pytest.raises(aegis.AegisError) as e:
        ask(p, "roadmap", None)
    assert e.value.kind in ("unauthenticated", "forbidden", "invalid_request")


def test_acl_allows_is_the_stores_rule():
    assert aegis.acl_allows({"teams": ["research"]}, ADA)
    assert not aegis.acl_allows({"teams": ["research"]}, BOB)
    assert not aegis.acl_allows({}, ADA), "an ACL naming nobody is read by nobody"
    assert not aegis.acl_allows({"public": True, "org": "acme"}, ADA)
    assert aegis.acl_allows({"public": True, "org": "acme"}, {**ADA, "org": "acme"})
