"""PulseDBVectorStore beyond LangChain's standard suite."""

from typing import List

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

import pulsedb
from pulsedb.langchain import PulseDBVectorStore


class Axes(Embeddings):
    """Texts naming axes ("x", "x y", ...) embed onto those axes."""

    def _one(self, text: str) -> List[float]:
        return [float(text.split().count(a)) + 0.001 for a in "xyzw"]

    def embed_documents(self, texts: List[str]) -> List[List[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> List[float]:
        return self._one(text)


@pytest.fixture()
def store(tmp_path):
    s = PulseDBVectorStore(tmp_path / "lc.db", embedding=Axes())
    yield s
    s.close()


def test_ids_are_kept_and_an_existing_id_is_replaced(store):
    assert store.add_texts(["x", "y"], ids=["doc-1", "doc-2"]) == ["doc-1", "doc-2"]
    store.add_documents([Document(page_content="z", metadata={"v": 2}, id="doc-1")])
    docs = sorted(store.get_by_ids(["doc-1", "doc-2", "missing"]), key=lambda d: d.id)
    assert [(d.id, d.page_content, d.metadata) for d in docs] == [
        ("doc-1", "z", {"v": 2}), ("doc-2", "y", {})]
    assert store.db.collective_stats(store.collective)["experience_count"] == 2
    # A repeated id in one call keeps its last text.
    store.add_texts(["x", "w"], ids=["doc-3", "doc-3"])
    assert [d.page_content for d in store.get_by_ids(["doc-3"])] == ["w"]


def test_metadata_round_trips_exactly(store):
    metadata = {"page": 3, "score": 0.25, "tags": ["a", "b"], "source": {"path": "/x", "n": None}}
    [doc_id] = store.add_texts(["x"], metadatas=[metadata])
    [doc] = store.get_by_ids([doc_id])
    assert doc.metadata == metadata and type(doc.metadata["page"]) is int


def test_filters_and_scores(store):
    store.add_texts(["x", "x y", "y"], ids=["a", "b", "c"])
    scored = store.similarity_search_with_score("x", k=3)
    assert [d.id for d, _ in scored][0] == "a"
    assert scored[0][1] >= scored[1][1] >= scored[2][1]
    relevant = store.similarity_search_with_relevance_scores("x", k=3)
    assert all(0.0 <= s <= 1.0 for _, s in relevant)
    [a] = store.db.recent(store.collective, filter={"tags_all": {"langchain_id": "a"}})
    store.db.update(a["id"], domain=["kept"])
    assert [d.id for d in store.similarity_search("x", k=3, filter={"domains": ["kept"]})] == ["a"]


def test_max_marginal_relevance_prefers_diversity(store):
    store.add_texts(["x", "x", "x y", "y"], ids=["x1", "x2", "xy", "y"])
    plain = [d.id for d in store.similarity_search("x", k=2)]
    diverse = [d.id for d in store.max_marginal_relevance_search("x", k=2, fetch_k=4,
                                                                 lambda_mult=0.3)]
    assert set(plain) == {"x1", "x2"}
    assert diverse[0] in {"x1", "x2"} and diverse[1] not in {"x1", "x2"}


def test_delete_none_empties_the_collection_only(tmp_path):
    with pulsedb.open(tmp_path / "shared.db", dimension=4) as db:
        other = db.create_collective("other")
        db.record(other, "stays", embedding=[1, 0, 0, 0])
        store = PulseDBVectorStore(db, collection="docs", embedding=Axes())
        store.add_texts(["x", "y"])
        store.delete(None)
        assert store.similarity_search("x", k=5) == []
        store.add_texts(["z"], ids=["z"])
        assert [d.id for d in store.similarity_search("z", k=5)] == ["z"]
        assert db.collective_stats(other)["experience_count"] == 1
        store.close()  # not the store's database: still open
        assert db.get_collective(other)["name"] == "other"


def test_from_texts_and_the_retriever(tmp_path):
    store = PulseDBVectorStore.from_texts(["x", "y"], Axes(), metadatas=[{"n": 1}, {"n": 2}],
                                          ids=["1", "2"], path_or_db=tmp_path / "ft.db")
    retriever = store.as_retriever(search_kwargs={"k": 1})
    [doc] = retriever.invoke("y")
    assert (doc.id, doc.metadata) == ("2", {"n": 2})
    store.close()
    # The collection persists: reopened by name.
    again = PulseDBVectorStore(tmp_path / "ft.db", embedding=Axes())
    assert sorted(d.id for d in again.get_by_ids(["1", "2"])) == ["1", "2"]
    again.close()


async def test_async_variants(store):
    ids = await store.aadd_texts(["x", "y"], ids=["a", "b"])
    await store.aadd_documents([Document(page_content="x y", id="a")])
    assert [d.page_content for d in await store.aget_by_ids(ids)] == ["x y", "y"]
    assert (await store.asimilarity_search("y", k=1))[0].id == "b"
    mmr = await store.amax_marginal_relevance_search("x", k=1, fetch_k=2)
    assert len(mmr) == 1
    await store.adelete(["a"])
    assert await store.aget_by_ids(["a"]) == []


def test_a_refused_replacement_keeps_the_old_document(store):
    store.add_texts(["x"], metadatas=[{"v": 1}], ids=["doc"])
    with pytest.raises(pulsedb.ValidationError) as e:
        store.add_texts(["y"], metadatas=[{"blob": "b" * 20_000}], ids=["doc"])
    assert e.value.field == "metadata"
    [doc] = store.get_by_ids(["doc"])
    assert (doc.page_content, doc.metadata) == ("x", {"v": 1})
