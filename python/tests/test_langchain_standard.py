"""LangChain's own vector store suite, sync and async, on a real file."""

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from pulsedb.langchain import PulseDBVectorStore


class TestPulseDBVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = PulseDBVectorStore(tmp_path / "langchain.db", embedding=self.get_embeddings())
        try:
            yield store
        finally:
            store.close()
