"""Every error arrives as its exception class, naming the bad input, and
changes nothing."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pulsedb


def count(db, collective):
    return db.collective_stats(collective)["experience_count"]


@pytest.mark.parametrize("kwargs, field", [
    ({"content": ""}, "content"),
    ({"content": "x" * 102_401}, "content"),
    ({"embedding": [1, 0, 0]}, "embedding"),
    ({"importance": 1.5}, "importance"),
    ({"confidence": -0.1}, "confidence"),
    ({"metadata": {"blob": "x" * 16_400}}, "metadata"),
    ({"metadata": {"when": object()}}, "metadata"),
    ({"metadata": {"x": float("nan")}}, "metadata"),
    ({"metadata": {"x": [1, float("inf")]}}, "metadata"),
    ({"metadata": {"s": {1, 2}}}, "metadata"),
    ({"metadata": {"nested": {1: "an int key"}}}, "metadata"),
    ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
    ({"domain": ["d"] * 51}, "domain"),
    ({"source_agent": ""}, "source_agent"),
    ({"experience_type": {"type": "no_such_type"}}, "experience_type"),
])
def test_validation_errors_name_the_field(db, collective, kwargs, field):
    args = {"content": "ok", "embedding": [1, 0, 0, 0], **kwargs}
    content = args.pop("content")
    with pytest.raises(pulsedb.ValidationError) as e:
        db.record(collective, content, **args)
    assert e.value.field == field, str(e.value)
    assert isinstance(e.value, pulsedb.PulseDBError)
    assert count(db, collective) == 0


def test_a_numpy_matrix_is_not_a_vector(db, collective):
    with pytest.raises(pulsedb.ValidationError) as e:
        db.record(collective, "m", embedding=np.ones((2, 2)))
    assert e.value.field == "embedding" and "1-d" in str(e.value)


def test_query_errors_name_the_query(db, collective):
    with pytest.raises(pulsedb.ValidationError) as e:
        db.search(collective, vector=[1, 0])
    assert e.value.field == "vector"
    with pytest.raises(pulsedb.ValidationError) as e:
        db.search(collective, vector=[1, 0, 0, 0], text="both")
    assert e.value.field == "vector"
    for bad in ([float("nan"), 0, 0, 0], [0, 0, 0, 0]):
        with pytest.raises(pulsedb.ValidationError) as e:
            db.search(collective, vector=bad)
        assert e.value.field == "vector", str(e.value)
        with pytest.raises(pulsedb.ValidationError) as e:
            db.context(collective, vector=bad)
        assert e.value.field == "vector", str(e.value)
    with pytest.raises(pulsedb.ValidationError) as e:
        db.search(collective, vector=[1, 0, 0, 0], filter={"experience_types": ["no_such"]})
    assert e.value.field == "filter"
    with pytest.raises(TypeError):
        db.search(collective, vector=[1, 0, 0, 0], filter={"domains": "not-a-list"})
    with pytest.raises(TypeError, match="unknown key 'domain'"):
        db.search(collective, vector=[1, 0, 0, 0], filter={"domain": ["typo"]})
    with pytest.raises(pulsedb.ValidationError) as e:
        db.relate(db.record(collective, "a", embedding=[1, 0, 0, 0]),
                  db.record(collective, "b", embedding=[0, 1, 0, 0]), "likes")
    assert e.value.field == "relation_type"


def test_bad_ids(db, collective):
    with pytest.raises(pulsedb.ValidationError) as e:
        db.get("not-an-id")
    assert e.value.field == "id"
    with pytest.raises(pulsedb.ValidationError) as e:
        db.record("nope", "x", embedding=[1, 0, 0, 0])
    assert e.value.field == "collective"
    missing = "01900000-0000-7000-8000-000000000000"
    assert db.get(missing) is None
    with pytest.raises(pulsedb.NotFoundError):
        db.update(missing, importance=0.1)
    with pytest.raises(pulsedb.NotFoundError):
        db.record(missing, "x", embedding=[1, 0, 0, 0])


def test_wrong_python_types_and_unknown_keywords_are_type_errors(db, collective):
    with pytest.raises(TypeError):
        db.record(collective, "x", embeding=[1, 0, 0, 0])
    with pytest.raises(TypeError):
        db.record(collective, 42, embedding=[1, 0, 0, 0])
    with pytest.raises(TypeError):
        db.record(collective, "x", embedding="1,0,0,0")
    with pytest.raises(TypeError):
        db.record(collective, "x", embedding=[[1, 0, 0, 0]])
    with pytest.raises(TypeError):
        db.record(collective, "x", embedding=[1, 0, 0, 0], domain="not-a-list")
    with pytest.raises(TypeError):
        db.record(collective, "x", embedding=[1, 0, 0, 0], metadata=["not", "a", "dict"])
    x = db.record(collective, "x", embedding=[1, 0, 0, 0])
    with pytest.raises(TypeError, match="unexpected keyword argument 'content'"):
        db.update(x, content="cannot change")
    with pytest.raises(TypeError):
        db.update(x, importance="high")
    with pytest.raises(TypeError):
        db.get(12345)
    with pytest.raises(TypeError):
        db.add_insight(collective, "one source as a str", x)
    assert count(db, collective) == 1


def test_text_without_an_embedder(db, collective):
    with pytest.raises(pulsedb.NoEmbedderError):
        db.search(collective, text="anything")
    with pytest.raises(pulsedb.ValidationError) as e:
        db.record(collective, "no vector and no embedder")
    assert e.value.field == "embedding"


def test_read_only_and_closed_handles(tmp_path):
    path = tmp_path / "ro.db"
    with pulsedb.open(path, dimension=4) as db:
        c = db.create_collective("c")
        x = db.record(c, "kept", embedding=[1, 0, 0, 0])
    with pulsedb.open(path, dimension=4, read_only=True) as ro:
        assert ro.get(x)["content"] == "kept"
        with pytest.raises(pulsedb.ReadOnlyError):
            ro.record(c, "no", embedding=[1, 0, 0, 0])
    with pytest.raises(pulsedb.ClosedError):
        ro.get(x)
    ro.close()  # closing twice is fine


def test_a_second_process_gets_database_locked(tmp_path):
    path = tmp_path / "locked.db"
    probe = textwrap.dedent(f"""
        import pulsedb
        for read_only in (False, True):
            try:
                pulsedb.open({str(path)!r}, dimension=4, read_only=read_only)
                print("opened")
            except pulsedb.DatabaseLockedError as e:
                print("locked:", e)
    """)
    with pulsedb.open(path, dimension=4) as db:
        db.create_collective("held")
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("locked:") for line in lines), out.stdout
    # Once closed here, the other process can open it.
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.splitlines()[0] == "opened", out.stdout + out.stderr
