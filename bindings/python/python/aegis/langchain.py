"""Serve a LangChain ``VectorStore`` as an Aegis retriever.

The documents it returns pass the pipeline's guard chain before they reach a prompt, like
those of any Aegis store; permissions are applied inside the search (through the store's
own ``filter``) so the top-k is cut over readable documents only, and Aegis checks every
returned document's ACL again before using it::

    from langchain_core.vectorstores import InMemoryVectorStore
    import aegis, aegis.langchain

    store = InMemoryVectorStore(embeddings)
    store.add_texts(["..."], metadatas=[{"acl": {"teams": ["research"]}}])
    aegis.langchain.register_store("handbook", store)
    # then, in TOML:  [[retrievers]]  id = "docs"  type = "handbook"

A document's ACL is its ``metadata["acl"]`` (``{"public", "org", "principals", "teams",
"labels"}``), the same shape Aegis's own stores keep; a document without one is read by
nobody.
"""

from . import acl_allows, register_retriever

__all__ = ["LangChainRetriever", "callable_filter", "register_store"]


def callable_filter(principal, filter):
    """The ``filter`` for stores that take a predicate over documents (LangChain's
    ``InMemoryVectorStore``): the caller may read it, and every ``filter`` key equals."""
    wanted = dict(filter or {})

    def readable(doc):
        metadata = doc.metadata or {}
        if not acl_allows(metadata.get("acl", {}), principal):
            return False
        return all(metadata.get(key) == value for key, value in wanted.items())

    return readable


class LangChainRetriever:
    """An Aegis retriever over ``store``. ``make_filter(principal, filter)`` builds the
    store's own filter argument (default :func:`callable_filter`); for a store whose filter
    is a metadata dict or an expression, pass one that expresses the same rule."""

    def __init__(self, store, *, make_filter=callable_filter):
        self.store = store
        self.make_filter = make_filter

    def retrieve(self, query, k, filter, ctx):
        principal = ctx["principal"]
        found = self.store.similarity_search_with_score(
            query, k=k, filter=self.make_filter(principal, filter)
        )
        documents = []
        for i, (doc, score) in enumerate(found):
            documents.append({
                "id": str(doc.id) if getattr(doc, "id", None) else f"langchain-{i}",
                "content": doc.page_content,
                "metadata": dict(doc.metadata or {}),
                "score": float(score),
            })
        return documents


def register_store(name, store, *, make_filter=callable_filter):
    """Registers ``store`` as retriever type ``name`` for ``[[retrievers]]``."""
    register_retriever(name, lambda config: LangChainRetriever(store, make_filter=make_filter))
