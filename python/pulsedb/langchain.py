"""PulseDB as a LangChain vector store.

Each LangChain document is one experience of a collective: ``page_content``
is its content, ``metadata`` its metadata (kept exactly), and the document's
id a tag (``langchain_id``), so that adding a document under an existing id
replaces it.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

import pulsedb

__all__ = ["PulseDBVectorStore"]

#: The tag holding a document's LangChain id.
ID_TAG = "langchain_id"


class PulseDBVectorStore(VectorStore):
    """A collective of a PulseDB database as a LangChain ``VectorStore``.

    ``path_or_db``: a database file (opened, or created with ``dimension``,
    else the length of one embedded probe text) or an open
    :class:`pulsedb.Database`. The collective named ``collection`` is
    created when missing. ``filter=`` arguments take PulseDB's
    ``SearchFilter`` dict.
    """

    def __init__(
        self,
        path_or_db: Union[str, "os.PathLike[str]", pulsedb.Database],
        collection: str = "langchain",
        embedding: Optional[Embeddings] = None,
        dimension: Optional[int] = None,
    ) -> None:
        if embedding is None:
            raise TypeError("PulseDBVectorStore needs an `embedding` (a LangChain Embeddings)")
        self._embedding = embedding
        if isinstance(path_or_db, pulsedb.Database):
            self._db, self._owned = path_or_db, False
        else:
            if dimension is None:
                dimension = len(embedding.embed_query("dimension probe"))
            self._db, self._owned = pulsedb.open(path_or_db, dimension=dimension), True
        self._adb = pulsedb.AsyncDatabase(self._db.as_async())
        self._name = collection
        self._collective = self._find_or_create(collection)

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def db(self) -> pulsedb.Database:
        """The database this store writes to."""
        return self._db

    @property
    def collective(self) -> str:
        """The id of the store's collective."""
        return self._collective

    def close(self) -> None:
        """Closes the database if this store opened it."""
        if self._owned:
            self._db.close()

    # -- writing ---------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        texts = list(texts)
        ids, given = _ids(ids, len(texts))
        vectors = self._embedding.embed_documents(texts)
        # The new versions first (all or nothing), then the old ones go: a
        # refused batch leaves the store as it was.
        stale = self._existing(given)
        self._db.record_many(self._collective, _items(texts, vectors, metadatas, ids))
        for experience in stale:
            self._db.delete(experience)
        return ids

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        texts = list(texts)
        ids, given = _ids(ids, len(texts))
        vectors = await self._embedding.aembed_documents(texts)
        stale = await self._aexisting(given)
        await self._adb.record_many(self._collective, _items(texts, vectors, metadatas, ids))
        for experience in stale:
            await self._adb.delete(experience)
        return ids

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        texts, metadatas, ids = _split(documents, kwargs)
        return self.add_texts(texts, metadatas, ids=ids)

    async def aadd_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        texts, metadatas, ids = _split(documents, kwargs)
        return await self.aadd_texts(texts, metadatas, ids=ids)

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> bool:
        """Deletes the documents of ``ids`` (missing ones are ignored);
        ``None`` empties the collection."""
        if ids is None:
            self._db.delete_collective(self._collective)
            self._collective = self._db.create_collective(self._name)
            return True
        for experience in self._existing(ids):
            self._db.delete(experience)
        return True

    async def adelete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> bool:
        if ids is None:
            await self._adb.delete_collective(self._collective)
            self._collective = await self._adb.create_collective(self._name)
            return True
        for experience in await self._aexisting(ids):
            await self._adb.delete(experience)
        return True

    # -- reading ---------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        return [_document(x) for i in ids for x in self._db.recent(**self._lookup(i))]

    async def aget_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        return [_document(x) for i in ids for x in await self._adb.recent(**self._lookup(i))]

    def similarity_search(self, query: str, k: int = 4, filter: Optional[dict] = None,
                          **kwargs: Any) -> List[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter)]

    async def asimilarity_search(self, query: str, k: int = 4, filter: Optional[dict] = None,
                                 **kwargs: Any) -> List[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, filter)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Optional[dict] = None,
                                     **kwargs: Any) -> List[Tuple[Document, float]]:
        vector = self._embedding.embed_query(query)
        return _scored(self._db.search(self._collective, vector=vector, k=k, filter=filter))

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            filter: Optional[dict] = None,
                                            **kwargs: Any) -> List[Tuple[Document, float]]:
        vector = await self._embedding.aembed_query(query)
        hits = await self._adb.search(self._collective, vector=vector, k=k, filter=filter)
        return _scored(hits)

    def similarity_search_by_vector(self, embedding: List[float], k: int = 4,
                                    filter: Optional[dict] = None, **kwargs: Any) -> List[Document]:
        hits = self._db.search(self._collective, vector=embedding, k=k, filter=filter)
        return [d for d, _ in _scored(hits)]

    async def asimilarity_search_by_vector(self, embedding: List[float], k: int = 4,
                                           filter: Optional[dict] = None,
                                           **kwargs: Any) -> List[Document]:
        hits = await self._adb.search(self._collective, vector=embedding, k=k, filter=filter)
        return [d for d, _ in _scored(hits)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: Optional[dict] = None,
                                      **kwargs: Any) -> List[Document]:
        vector = self._embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, filter)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5,
                                             filter: Optional[dict] = None,
                                             **kwargs: Any) -> List[Document]:
        vector = await self._embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter)

    def max_marginal_relevance_search_by_vector(self, embedding: List[float], k: int = 4,
                                                fetch_k: int = 20, lambda_mult: float = 0.5,
                                                filter: Optional[dict] = None,
                                                **kwargs: Any) -> List[Document]:
        hits = self._db.search(self._collective, vector=embedding, k=fetch_k, filter=filter,
                               include_embedding=True)
        return _diverse(embedding, hits, k, lambda_mult)

    async def amax_marginal_relevance_search_by_vector(self, embedding: List[float], k: int = 4,
                                                       fetch_k: int = 20,
                                                       lambda_mult: float = 0.5,
                                                       filter: Optional[dict] = None,
                                                       **kwargs: Any) -> List[Document]:
        hits = await self._adb.search(self._collective, vector=embedding, k=fetch_k,
                                      filter=filter, include_embedding=True)
        return _diverse(embedding, hits, k, lambda_mult)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # Cosine similarity in [-1, 1] onto [0, 1].
        return lambda similarity: (similarity + 1.0) / 2.0

    @classmethod
    def from_texts(
        cls,
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[dict]] = None,
        ids: Optional[List[str]] = None,
        *,
        path_or_db: Union[str, "os.PathLike[str]", pulsedb.Database],
        collection: str = "langchain",
        **kwargs: Any,
    ) -> "PulseDBVectorStore":
        store = cls(path_or_db, collection=collection, embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # -- ids -------------------------------------------------------------

    def _find_or_create(self, name: str) -> str:
        for c in self._db.list_collectives():
            if c["name"] == name:
                return c["id"]
        return self._db.create_collective(name)

    def _lookup(self, document_id: str) -> dict:
        """`recent`'s arguments finding the experiences of a document id."""
        return {
            "collective": self._collective,
            "limit": 100,
            "filter": {"tags_all": {ID_TAG: document_id}, "exclude_archived": False},
        }

    def _existing(self, ids: Iterable[str]) -> List[str]:
        return [x["id"] for i in ids for x in self._db.recent(**self._lookup(i))]

    async def _aexisting(self, ids: Iterable[str]) -> List[str]:
        return [x["id"] for i in ids for x in await self._adb.recent(**self._lookup(i))]


def _ids(ids: Optional[List[Optional[str]]], n: int) -> Tuple[List[str], List[str]]:
    """Every text's id (a fresh one where none is given), and the given
    ones, which may already be stored."""
    if ids is None:
        ids = [None] * n
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} texts")
    given = list(dict.fromkeys(str(i) for i in ids if i is not None))
    return [str(i) if i is not None else str(uuid.uuid4()) for i in ids], given


def _split(documents: List[Document], kwargs: dict):
    ids = kwargs.get("ids")
    if ids is None:
        ids = [d.id for d in documents]
    return [d.page_content for d in documents], [d.metadata for d in documents], ids


def _items(texts, vectors, metadatas, ids) -> List[dict]:
    if metadatas is not None and len(metadatas) != len(texts):
        raise ValueError(f"{len(metadatas)} metadatas for {len(texts)} texts")
    latest = {document_id: n for n, document_id in enumerate(ids)}  # the last of a repeated id wins
    return [
        {
            "content": texts[n],
            "embedding": vectors[n],
            "tags": {ID_TAG: document_id},
            "metadata": dict(metadatas[n]) if metadatas is not None and metadatas[n] else {},
        }
        for document_id, n in latest.items()
    ]


def _document(experience: dict) -> Document:
    return Document(
        id=experience["tags"].get(ID_TAG, experience["id"]),
        page_content=experience["content"],
        metadata=experience["metadata"],
    )


def _scored(hits: List[dict]) -> List[Tuple[Document, float]]:
    return [(_document(h["experience"]), h["similarity"]) for h in hits]


def _diverse(query: List[float], hits: List[dict], k: int, lambda_mult: float) -> List[Document]:
    if not hits:
        return []
    vectors = [h["experience"]["embedding"] for h in hits]
    chosen = maximal_marginal_relevance(np.asarray(query, dtype=np.float32), vectors,
                                        lambda_mult=lambda_mult, k=k)
    return [_document(hits[i]["experience"]) for i in chosen]
