"""The package's handle on a real database file: shapes, vectors, metadata,
relations, insights, activity, the change log, and threads."""

import threading

import numpy as np
import pytest

import pulsedb


def test_records_come_back_in_the_servers_json_shape(db, collective):
    x = db.record(collective, "the build needs cmake", embedding=[1, 0, 0, 0],
                  experience_type={"type": "fact", "statement": "cmake", "source": "ci"},
                  importance=0.7, domain=["build"], tags={"os": "linux"},
                  source_agent="agent-1", source_task="setup")
    got = db.get(x)
    assert got["id"] == x and got["collective_id"] == collective
    assert got["content"] == "the build needs cmake"
    assert got["experience_type"] == {"type": "fact", "statement": "cmake", "source": "ci"}
    assert got["importance"] == 0.7 and got["confidence"] == 0.5
    assert got["domain"] == ["build"] and got["tags"] == {"os": "linux"}
    assert got["source_agent"] == "agent-1" and got["source_task"] == "setup"
    assert isinstance(got["timestamp"], int) and got["archived"] is False
    assert "embedding" not in got
    # `null` fields are left out.
    y = db.record(collective, "no task", embedding=[0, 1, 0, 0])
    assert "source_task" not in db.get(y)
    assert db.get(y)["experience_type"] == {"type": "generic"}


def test_metadata_is_stored_and_returned_exactly(db, collective):
    metadata = {"int": 1, "big": 2**53 + 1, "neg": -7, "float": 0.1, "bool": True,
                "none": None, "text": "héllo ✓", "list": [1, "two", 3.5, [4]],
                "nested": {"a": {"b": [True, None]}}, "empty": {}}
    x = db.record(collective, "m", embedding=[1, 0, 0, 0], metadata=metadata)
    got = db.get(x)["metadata"]
    assert got == metadata
    assert type(got["int"]) is int and type(got["big"]) is int and type(got["float"]) is float
    assert list(got) == list(metadata), "key order is kept"
    db.update(x, metadata={"replaced": 2})
    assert db.get(x)["metadata"] == {"replaced": 2}
    [hit] = db.search(collective, vector=[1, 0, 0, 0], k=1)
    assert hit["experience"]["metadata"] == {"replaced": 2}


def test_vectors_go_in_as_lists_or_numpy_and_come_out_as_float32(db, collective):
    a = db.record(collective, "list", embedding=[0.0, 1.0, 0.0, 0.0])
    b = db.record(collective, "f64", embedding=np.array([1.0, 0.0, 0.0, 0.0]))
    c = db.record(collective, "f32", embedding=np.array([0, 0, 1, 0], dtype=np.float32))
    for x, axis in ((a, 1), (b, 0), (c, 2)):
        v = db.get(x, include_embedding=True)["embedding"]
        assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (4,)
        assert int(np.argmax(v)) == axis
    hits = db.search(collective, vector=np.array([0, 0, 0.9, 0.1]), k=3, include_embedding=True)
    assert [h["experience"]["content"] for h in hits][0] == "f32"
    assert hits[0]["experience"]["embedding"].dtype == np.float32
    assert hits[0]["similarity"] >= hits[1]["similarity"] >= hits[2]["similarity"]


def test_search_filters_and_weights(db, collective):
    for i in range(20):
        db.record(collective, f"r{i}", embedding=[1, i / 20, 0, 0],
                  domain=["even" if i % 2 == 0 else "odd"], importance=i / 20)
    hits = db.search(collective, vector=[1, 0, 0, 0], k=5, filter={"domains": ["odd"]})
    assert len(hits) == 5 and all(h["experience"]["domain"] == ["odd"] for h in hits)
    hits = db.search(collective, vector=[1, 0, 0, 0], k=20, filter={"min_importance": 0.5})
    assert len(hits) == 10 and all(h["experience"]["importance"] >= 0.5 for h in hits)
    weighted = db.search(collective, vector=[1, 0, 0, 0], k=3,
                         weights={"similarity": 0.5, "energy": 0.5})
    assert len(weighted) == 3


def test_record_many_is_all_or_nothing(db, collective):
    ids = db.record_many(collective, [
        {"content": "a", "embedding": [1, 0, 0, 0], "metadata": {"n": 1}},
        {"content": "b", "embedding": np.array([0, 1, 0, 0]), "tags": {"k": "v"}},
    ])
    assert [db.get(i)["content"] for i in ids] == ["a", "b"]
    with pytest.raises(pulsedb.ValidationError) as e:
        db.record_many(collective, [
            {"content": "c", "embedding": [1, 0, 0, 0]},
            {"content": "d", "embedding": [1, 0, 0]},
        ])
    assert e.value.field == "embedding"
    assert db.collective_stats(collective)["experience_count"] == 2
    with pytest.raises(TypeError, match="unknown key"):
        db.record_many(collective, [{"content": "e", "embeding": [1, 0, 0, 0]}])
    assert db.record_many(collective, []) == []


def test_update_archive_reinforce_delete(db, collective):
    x = db.record(collective, "x", embedding=[1, 0, 0, 0])
    db.update(x, importance=0.9, domain=["a"], tags={"t": "1"})
    got = db.get(x)
    assert (got["importance"], got["domain"], got["tags"]) == (0.9, ["a"], {"t": "1"})
    db.archive(x)
    assert db.get(x)["archived"] and db.search(collective, vector=[1, 0, 0, 0]) == []
    db.unarchive(x)
    assert len(db.search(collective, vector=[1, 0, 0, 0])) == 1
    assert db.reinforce(x) == 1 and db.reinforce(x) == 2
    db.delete(x)
    assert db.get(x) is None


def test_collectives(db):
    a = db.create_collective("a", owner_id="ops")
    b = db.create_collective("b")
    assert {c["name"] for c in db.list_collectives()} == {"a", "b"}
    assert db.get_collective(a)["owner_id"] == "ops"
    stats = db.collective_stats(b)
    assert stats["experience_count"] == 0 and "oldest_experience" not in stats
    db.delete_collective(a)
    with pytest.raises(pulsedb.NotFoundError):
        db.get_collective(a)


def test_relations_insights_activity_and_context(db, collective):
    a = db.record(collective, "a", embedding=[1, 0, 0, 0])
    b = db.record(collective, "b", embedding=[0.9, 0.1, 0, 0])
    r = db.relate(a, b, "supports", strength=0.8, metadata="seen twice")
    [rel] = db.related(a, direction="outgoing")
    assert rel["experience"]["id"] == b and rel["relation"]["id"] == r
    assert rel["relation"]["relation_type"] == "supports" and rel["relation"]["strength"] == 0.8
    assert db.related(a, relation_type="contradicts") == []
    assert [x["experience"]["id"] for x in db.related(b, direction="incoming")] == [a]
    i = db.add_insight(collective, "a and b agree", [a, b], embedding=[1, 0, 0, 0],
                       insight_type="synthesis", confidence=0.6)
    db.set_activity(collective, "agent-1", current_task="reviewing")
    [agent] = db.active_agents(collective)
    assert agent["agent_id"] == "agent-1" and agent["current_task"] == "reviewing"
    ctx = db.context(collective, vector=[1, 0, 0, 0], max_similar=1)
    assert [h["experience"]["id"] for h in ctx["similar_experiences"]] == [a]
    assert [x["id"] for x in ctx["insights"]] == [i]
    assert [x["id"] for x in ctx["relations"]] == [r]
    assert [x["agent_id"] for x in ctx["active_agents"]] == ["agent-1"]
    db.end_activity(collective, "agent-1")
    assert db.active_agents(collective) == []


def test_changes_are_polled_in_order(db, collective):
    start = db.changes()[1]
    ids = [db.record(collective, f"c{i}", embedding=[1, i, 0, 0]) for i in range(5)]
    db.delete(ids[0])
    events, nxt = db.changes(since=start, limit=3)
    assert [e["experience_id"] for e in events] == ids[:3]
    assert all(e["event_type"] == "created" for e in events)
    rest, end = db.changes(since=nxt)
    assert [e["event_type"] for e in rest] == ["created", "created", "deleted"]
    assert db.changes(since=end) == ([], end)


def test_threads_record_and_search_concurrently_without_losing_writes(db, collective):
    writers, per_writer = 8, 150
    recorded = [[] for _ in range(writers)]
    failures = []

    def write(n):
        try:
            for i in range(per_writer):
                recorded[n].append(db.record(collective, f"w{n}-{i}", embedding=[1, n, i, 0]))
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)

    def search():
        try:
            for _ in range(100):
                hits = db.search(collective, vector=[1, 1, 1, 0], k=5)
                assert len(hits) <= 5
        except Exception as e:  # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    threads += [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    ids = [x for xs in recorded for x in xs]
    assert len(set(ids)) == writers * per_writer
    assert db.collective_stats(collective)["experience_count"] == writers * per_writer
    assert all(db.get(x) is not None for x in ids)


def test_the_gil_is_released_while_a_call_waits(db, collective):
    # A thread blocked in the engine (waiting for an event) must not hold
    # the GIL: the main thread records the event it waits for.
    watch = db.watch(collective)
    got = []
    waiter = threading.Thread(target=lambda: got.append(next(watch)))
    waiter.start()
    x = db.record(collective, "wake up", embedding=[1, 0, 0, 0])
    waiter.join(timeout=60)
    assert not waiter.is_alive() and got[0]["experience_id"] == x


def test_closing_ends_blocked_and_later_watch_iterations(tmp_path):
    db = pulsedb.open(tmp_path / "w.db", dimension=4)
    c = db.create_collective("c")
    watches = [db.watch(c), db.watch(c)]
    ended = []
    waiter = threading.Thread(target=lambda: ended.append(list(watches[0])))
    waiter.start()
    db.record(c, "seen", embedding=[1, 0, 0, 0])
    db.close()
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert [e["experience"]["content"] for e in ended[0]] == ["seen"]
    assert [e["event_type"] for e in watches[1]] == ["created"]
    with pytest.raises(pulsedb.ClosedError):
        db.watch(c)


def test_deleting_a_collective_ends_its_watch(db, collective):
    watch = db.watch(collective)
    db.delete_collective(collective)
    assert [e for e in watch if e["event_type"] != "deleted"] == []


def test_context_manager_closes(tmp_path):
    with pulsedb.open(tmp_path / "cm.db", dimension=4) as db:
        c = db.create_collective("c")
    with pytest.raises(pulsedb.ClosedError):
        db.get_collective(c)
    # Reopened, the data is there.
    with pulsedb.open(tmp_path / "cm.db", dimension=4) as db:
        assert db.get_collective(c)["name"] == "c"


def test_closing_a_watch_ends_a_blocked_iteration(db, collective):
    watch = db.watch(collective)
    ended = []
    waiter = threading.Thread(target=lambda: ended.append(list(watch)))
    waiter.start()
    watch.close()
    waiter.join(timeout=60)
    assert not waiter.is_alive() and ended == [[]]


def test_a_handle_dropped_without_close_releases_the_file(tmp_path):
    import gc

    db = pulsedb.open(tmp_path / "dropped.db", dimension=4)
    c = db.create_collective("c")
    x = db.record(c, "kept", embedding=[1, 0, 0, 0])
    del db
    gc.collect()
    with pulsedb.open(tmp_path / "dropped.db", dimension=4) as again:
        assert again.get(x)["content"] == "kept"
