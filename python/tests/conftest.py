"""Shared fixtures: every test gets its own database file."""

import pytest

import pulsedb


@pytest.fixture()
def db(tmp_path):
    """A 4-dimensional database, closed after the test."""
    handle = pulsedb.open(tmp_path / "test.db", dimension=4)
    yield handle
    handle.close()


@pytest.fixture()
def collective(db):
    return db.create_collective("team")
