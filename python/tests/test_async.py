"""The asyncio handle: coroutines that never block the loop, async watch."""

import asyncio

import pytest

import pulsedb


@pytest.fixture()
async def adb(tmp_path):
    handle = await pulsedb.open_async(tmp_path / "async.db", dimension=4)
    yield handle
    await handle.close()


async def test_a_call_returns_before_the_engine_answers(adb):
    c = await adb.create_collective("c")
    # The native call hands back a future that only the running loop can
    # settle: the call itself did not wait for the engine.
    pending = adb._db.record(c, "x", embedding=[1, 0, 0, 0])
    assert isinstance(pending, asyncio.Future) and not pending.done()
    x = await pending
    assert (await adb.get(x))["content"] == "x"


async def test_a_hundred_concurrent_tasks(adb):
    c = await adb.create_collective("c")

    async def agent(n):
        x = await adb.record(c, f"task {n}", embedding=[1, n, 0, 0], metadata={"n": n})
        hits = await adb.search(c, vector=[1, n, 0, 0], k=3)
        assert hits, "the agent's own record is there"
        return x

    ids = await asyncio.gather(*(agent(n) for n in range(100)))
    assert len(set(ids)) == 100
    assert (await adb.collective_stats(c))["experience_count"] == 100
    got = await asyncio.gather(*(adb.get(x) for x in ids))
    assert sorted(g["metadata"]["n"] for g in got) == list(range(100))


async def test_errors_arrive_as_exceptions(adb):
    c = await adb.create_collective("c")
    with pytest.raises(pulsedb.ValidationError) as e:
        await adb.record(c, "x", embedding=[1, 0])
    assert e.value.field == "embedding"
    with pytest.raises(pulsedb.NotFoundError):
        await adb.get_collective("01900000-0000-7000-8000-000000000000")


async def test_watch_is_an_async_iterator_from_the_call(adb):
    c = await adb.create_collective("c")
    events = adb.watch(c)  # not awaited
    ids = [await adb.record(c, f"e{i}", embedding=[1, i, 0, 0]) for i in range(3)]
    seen = []
    async for event in events:
        seen.append(event["experience_id"])
        if len(seen) == 3:
            break
    assert seen == ids


async def test_closing_ends_async_watchers(tmp_path):
    adb = await pulsedb.open_async(tmp_path / "w.db", dimension=4)
    c = await adb.create_collective("c")
    events = adb.watch(c)

    async def drain():
        return [e async for e in events]

    waiter = asyncio.ensure_future(drain())
    await adb.record(c, "one", embedding=[1, 0, 0, 0])
    await asyncio.sleep(0)
    await adb.close()
    got = await asyncio.wait_for(waiter, timeout=60)
    assert [e["experience"]["content"] for e in got] == ["one"]
    with pytest.raises(pulsedb.ClosedError):
        await adb.list_collectives()


async def test_async_context_manager(tmp_path):
    async with await pulsedb.open_async(tmp_path / "cm.db", dimension=4) as adb:
        c = await adb.create_collective("c")
    with pytest.raises(pulsedb.ClosedError):
        await adb.get_collective(c)


async def test_closing_a_watch_ends_a_waiting_iteration(adb):
    c = await adb.create_collective("c")
    events = adb.watch(c)
    waiter = asyncio.ensure_future(events.__anext__())
    await asyncio.sleep(0.05)  # the iteration is waiting for an event
    await asyncio.to_thread(events.close)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, timeout=60)
    await adb.record(c, "after", embedding=[1, 0, 0, 0])
    assert [e async for e in events] == []


async def test_a_cancelled_anext_loses_no_event(adb):
    c = await adb.create_collective("c")
    events = adb.watch(c)
    for _ in range(3):  # a consumer polling with a timeout
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(events.__anext__(), timeout=0.05)
    x = await adb.record(c, "after the timeouts", embedding=[1, 0, 0, 0])
    y = await adb.record(c, "and one more", embedding=[0, 1, 0, 0])
    got = [await asyncio.wait_for(events.__anext__(), timeout=60) for _ in range(2)]
    assert [e["experience_id"] for e in got] == [x, y]
