"""PulseDB embedded in Python: collective memory for AI agent swarms.

``pulsedb.open(path)`` opens (or creates) a database file in this process;
``await pulsedb.open_async(path)`` gives the same methods as coroutines.
Dicts have the JSON shapes of PulseDB's HTTP API; vectors go in as lists or
numpy arrays and come out as float32 numpy arrays.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Optional, Union
import os

from . import _native
from ._native import (
    ChangesCompactedError,
    ClosedError,
    Database,
    DatabaseLockedError,
    NoEmbedderError,
    NotFoundError,
    OverloadedError,
    PulseDBError,
    ReadOnlyError,
    ValidationError,
    Watch,
)

__all__ = [
    "AsyncDatabase",
    "ChangesCompactedError",
    "ClosedError",
    "Database",
    "DatabaseLockedError",
    "NoEmbedderError",
    "NotFoundError",
    "OverloadedError",
    "PulseDBError",
    "ReadOnlyError",
    "ValidationError",
    "Watch",
    "open",
    "open_async",
]

PathLike = Union[str, "os.PathLike[str]"]


def open(
    path: PathLike,
    dimension: int = 384,
    embedder: Any = None,
    read_only: bool = False,
) -> Database:
    """Opens or creates the database file at ``path``.

    ``embedder``: None, ``"builtin"`` (all-MiniLM-L6-v2 from the model
    cache) or an object with ``embed_documents(list[str])`` and a
    ``model_id`` str; with one, text can be recorded and searched.
    """
    return _native.open(path, dimension, embedder, read_only)


async def open_async(
    path: PathLike,
    dimension: int = 384,
    embedder: Any = None,
    read_only: bool = False,
) -> "AsyncDatabase":
    """As :func:`open`, for asyncio: every method is a coroutine and none
    blocks the event loop (the engine works on its own threads)."""
    native = await _native.open_async(path, dimension, embedder, read_only)
    return AsyncDatabase(native)


class AsyncDatabase:
    """The methods of :class:`Database`, each a coroutine."""

    def __init__(self, native: Database) -> None:
        self._db = native

    async def __aenter__(self) -> "AsyncDatabase":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        return await self._db.close()

    async def create_collective(self, name: str, owner_id: Optional[str] = None) -> str:
        return await self._db.create_collective(name, owner_id)

    async def get_collective(self, id: str) -> dict:
        return await self._db.get_collective(id)

    async def list_collectives(self) -> list:
        return await self._db.list_collectives()

    async def delete_collective(self, id: str) -> None:
        return await self._db.delete_collective(id)

    async def collective_stats(self, id: str) -> dict:
        return await self._db.collective_stats(id)

    async def record(self, collective: str, content: str, **fields: Any) -> str:
        return await self._db.record(collective, content, **fields)

    async def record_many(self, collective: str, items: list) -> list:
        return await self._db.record_many(collective, items)

    async def index_stats(self, collective: str) -> dict:
        return await self._db.index_stats(collective)

    async def get(self, id: str, include_embedding: bool = False) -> Optional[dict]:
        return await self._db.get(id, include_embedding)

    async def update(self, id: str, **fields: Any) -> None:
        return await self._db.update(id, **fields)

    async def archive(self, id: str) -> None:
        return await self._db.archive(id)

    async def unarchive(self, id: str) -> None:
        return await self._db.unarchive(id)

    async def delete(self, id: str) -> None:
        return await self._db.delete(id)

    async def reinforce(self, id: str) -> int:
        return await self._db.reinforce(id)

    async def recent(self, collective: str, limit: int = 10, filter: Optional[dict] = None) -> list:
        return await self._db.recent(collective, limit, filter)

    async def search(self, collective: str, **query: Any) -> list:
        return await self._db.search(collective, **query)

    async def context(self, collective: str, **query: Any) -> dict:
        return await self._db.context(collective, **query)

    async def relate(self, source: str, target: str, relation_type: str, strength: float = 0.5,
                     metadata: Optional[str] = None) -> str:
        return await self._db.relate(source, target, relation_type, strength, metadata)

    async def related(self, id: str, direction: str = "both",
                      relation_type: Optional[str] = None) -> list:
        return await self._db.related(id, direction, relation_type)

    async def add_insight(self, collective: str, content: str, sources: list, **fields: Any) -> str:
        return await self._db.add_insight(collective, content, sources, **fields)

    async def set_activity(self, collective: str, agent_id: str,
                           current_task: Optional[str] = None) -> None:
        return await self._db.set_activity(collective, agent_id, current_task)

    async def end_activity(self, collective: str, agent_id: str) -> None:
        return await self._db.end_activity(collective, agent_id)

    async def active_agents(self, collective: str) -> list:
        return await self._db.active_agents(collective)

    async def changes(self, since: int = 0, limit: int = 1000) -> tuple:
        return await self._db.changes(since, limit)

    async def embed(self, texts: list) -> list:
        return await self._db.embed(texts)

    def watch(self, collective: str) -> AsyncIterator[dict]:
        """The collective's changes from now on, as an async iterator (not
        awaited: ``async for event in adb.watch(c)``)."""
        return self._db.watch(collective)
