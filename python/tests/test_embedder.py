"""The built-in embedder through Python: the vectors the Rust API gives
(a real `pulsedb serve` with `--embedder builtin`), and the independent
reference the Rust tests check."""

import json
import os
import pathlib
import subprocess
import urllib.request

import numpy as np
import pytest

import pulsedb

ROOT = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "fixtures" / "minilm_reference.json"


def pulsedb_binary() -> str:
    binary = os.environ.get("PULSEDB_BIN", "")
    assert binary and os.path.exists(binary), (
        "PULSEDB_BIN must name a built `pulsedb` binary (make test sets it)")
    return binary


class Server:
    """`pulsedb serve` on a free port, stopped on exit."""

    def __init__(self, db: pathlib.Path) -> None:
        self.process = subprocess.Popen(
            [pulsedb_binary(), "serve", "--addr", "127.0.0.1:0", "--db", str(db),
             "--embedder", "builtin"],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("pulsedb listening on "), line
        self.url = line.split()[-1]

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"content-type": "application/json"})
        # Loopback: past any proxy the environment names.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=120) as response:
            return json.loads(response.read())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def reference_cases():
    return json.loads(REFERENCE.read_text())["cases"]


def test_python_vectors_are_the_rust_apis(tmp_path):
    texts = [case["text"] for case in reference_cases()]
    with Server(tmp_path / "rust.db") as server:
        cid = server.call("POST", "/v1/collectives", {"name": "c"})["id"]
        rust = []
        for text in texts:
            xid = server.call("POST", f"/v1/collectives/{cid}/experiences", {"content": text})["id"]
            got = server.call("GET", f"/v1/experiences/{xid}?include_embedding=true")
            rust.append(np.asarray(got["embedding"], dtype=np.float32))

    with pulsedb.open(tmp_path / "py.db", embedder="builtin") as db:
        embedded = db.embed(texts)
        c = db.create_collective("c")
        recorded = [db.get(db.record(c, t), include_embedding=True)["embedding"] for t in texts]
        [top] = db.search(c, text=texts[0], k=1)

    assert top["experience"]["content"] == texts[0]
    for r, e, x in zip(rust, embedded, recorded):
        assert e.dtype == np.float32 and e.shape == (384,)
        # The same model on the same machine: equal up to the rounding of
        # texts batched together with different padding.
        np.testing.assert_allclose(e, r, atol=1e-5)
        np.testing.assert_allclose(x, r, atol=1e-5)


def test_python_vectors_match_the_independent_reference(tmp_path):
    cases = reference_cases()
    with pulsedb.open(tmp_path / "ref.db", embedder="builtin") as db:
        vectors = db.embed([case["text"] for case in cases])
    for case, v in zip(cases, vectors):
        expected = np.asarray(case["embedding"], dtype=np.float32)
        cosine = float(v @ expected / (np.linalg.norm(v) * np.linalg.norm(expected)))
        assert cosine >= 0.999, (case["text"], cosine)


def test_a_python_embedder_object(tmp_path):
    class Letters:
        model_id = "letters-v1"

        def embed_documents(self, texts):
            return [[t.count(ch) + 0.01 for ch in "aeio"] for t in texts]

    with pulsedb.open(tmp_path / "obj.db", dimension=4, embedder=Letters()) as db:
        c = db.create_collective("c")
        db.record(c, "aaaa")
        db.record(c, "oooo")
        [hit] = db.search(c, text="a", k=1)
        assert hit["experience"]["content"] == "aaaa"
    # The model id is stored: another model cannot open the file.
    class Other(Letters):
        model_id = "other-v2"

    with pytest.raises(pulsedb.PulseDBError, match="letters-v1"):
        pulsedb.open(tmp_path / "obj.db", dimension=4, embedder=Other())


def test_a_missing_model_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PULSEDB_MODEL_DIR", str(tmp_path / "no-model-here"))
    with pytest.raises(pulsedb.NoEmbedderError, match="make model|fetch"):
        pulsedb.open(tmp_path / "m.db", embedder="builtin")
