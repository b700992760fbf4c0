"""A forked child (multiprocessing's default on Linux) gets a clear error
from the parent's handle and can open databases of its own."""

import multiprocessing

import pulsedb


def child(parent_db, own_path, answers):
    try:
        parent_db.list_collectives()
        answers.put("parent handle worked")
    except pulsedb.PulseDBError as e:
        answers.put(f"refused: {e}")
    with pulsedb.open(own_path, dimension=4) as db:
        c = db.create_collective("child")
        x = db.record(c, "from the child", embedding=[1, 0, 0, 0])
        answers.put(db.search(c, vector=[1, 0, 0, 0], k=1)[0]["experience"]["id"] == x)


def test_a_forked_child_opens_its_own_database(db, tmp_path):
    db.create_collective("parent")
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    process = fork.Process(target=child, args=(db, str(tmp_path / "child.db"), answers))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 0
    refused = answers.get(timeout=10)
    assert refused.startswith("refused:") and "fork" in refused, refused
    assert answers.get(timeout=10) is True
    # The parent's handle still works.
    assert [c["name"] for c in db.list_collectives()] == ["parent"]

