"""The pulsedb-bench workload (shared/bench/WORKLOAD.md) through the Python
package: one JSON object on one line, the keys of pulsedb-bench's phases
that a Python agent meets.

    python python/bench/bench.py [--n 10000] [--dim 384] [--queries 200]
        [--k 10] [--seed 42] [--writers 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

import pulsedb

TOPICS = 10
DOMAINS = 5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Data:
    """Vectors around 100 centres on the unit sphere, ~200-byte texts, a
    topic tag (10 values), a domain (5 values), uniform importance."""

    def __init__(self, dim: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        centres = self.rng.normal(size=(100, dim))
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.sigma = 0.03 * (384 / dim) ** 0.5
        self.dim = dim

    def vectors(self, n: int) -> np.ndarray:
        picks = self.rng.integers(0, len(self.centres), size=n)
        v = self.centres[picks] + self.rng.normal(scale=self.sigma, size=(n, self.dim))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def items(self, n: int) -> list:
        vectors = self.vectors(n)
        topics = self.rng.integers(0, TOPICS, size=n)
        domains = self.rng.integers(0, DOMAINS, size=n)
        importance = self.rng.uniform(size=n)
        filler = "agents share what they learn while working on the same codebase; "
        return [{
            "content": f"experience {i}: " + (filler * 3)[:180],
            "embedding": vectors[i],
            "tags": {"topic": f"t{topics[i]}"},
            "domain": [f"d{domains[i]}"],
            "importance": float(importance[i]),
        } for i in range(n)]


def micros(samples: list) -> tuple:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return round(p50 * 1e6, 1), round(p99 * 1e6, 1)


def recall(found: list, truth: np.ndarray) -> float:
    return len(set(found) & set(truth.tolist())) / len(truth)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--writers", type=int, default=64)
    a = ap.parse_args()
    data = Data(a.dim, a.seed)
    out = {"n": a.n, "dim": a.dim, "k": a.k, "seed": a.seed, "writers": a.writers,
           "durability": "immediate", "through": "python"}
    workdir = tempfile.mkdtemp(prefix="pulsedb-bench-python-")
    path = os.path.join(workdir, "bench.db")
    db = pulsedb.open(path, dimension=a.dim)
    c = db.create_collective("bench")
    ids, vectors, topics = [], [], []

    def keep(items, new_ids):
        ids.extend(new_ids)
        vectors.extend(i["embedding"] for i in items)
        topics.extend(i["tags"]["topic"] for i in items)

    # As pulsedb-bench: half the records one at a time, a quarter from
    # concurrent writers, a quarter in bulk.
    n_seq, quarter = a.n // 2, a.n // 4
    log(f"sequential record of {n_seq}")
    items = data.items(n_seq)
    samples = []
    started = time.perf_counter()
    for item in items:
        t = time.perf_counter()
        x = db.record(c, item["content"], embedding=item["embedding"], tags=item["tags"],
                      domain=item["domain"], importance=item["importance"])
        samples.append(time.perf_counter() - t)
        ids.append(x)
    out["record_seq_per_s"] = round(n_seq / (time.perf_counter() - started))
    out["record_seq_p50_us"], out["record_seq_p99_us"] = micros(samples)
    vectors.extend(i["embedding"] for i in items)
    topics.extend(i["tags"]["topic"] for i in items)

    log(f"concurrent record of {quarter} from {a.writers} threads")
    items = data.items(quarter)
    shares = [items[w::a.writers] for w in range(a.writers)]
    results = [None] * a.writers
    latencies = [[] for _ in range(a.writers)]

    def writer(w: int) -> None:
        got = []
        for item in shares[w]:
            t = time.perf_counter()
            got.append(db.record(c, item["content"], embedding=item["embedding"],
                                 tags=item["tags"], domain=item["domain"],
                                 importance=item["importance"]))
            latencies[w].append(time.perf_counter() - t)
        results[w] = got

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(a.writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["record_conc_per_s"] = round(quarter / (time.perf_counter() - started))
    out["record_conc_p50_us"], out["record_conc_p99_us"] = micros(
        [x for xs in latencies for x in xs])
    for w in range(a.writers):
        keep(shares[w], results[w])

    log(f"bulk record of {quarter}")
    items = data.items(quarter)
    started = time.perf_counter()
    for b in range(0, quarter, 1000):
        batch = items[b:b + 1000]
        keep(batch, db.record_many(c, batch))
    out["record_bulk_per_s"] = round(quarter / (time.perf_counter() - started))

    log("get by id")
    rng = np.random.default_rng(a.seed + 1)
    samples = []
    for i in rng.integers(0, len(ids), size=2000):
        t = time.perf_counter()
        db.get(ids[i])
        samples.append(time.perf_counter() - t)
    out["get_p50_us"], out["get_p99_us"] = micros(samples)

    matrix = np.stack(vectors)
    queries = data.vectors(a.queries)
    truth = np.argsort(-(queries @ matrix.T), axis=1)[:, :a.k]
    position = {x: n for n, x in enumerate(ids)}
    # Searches are measured on the settled index: the vectors the writes
    # left in the buffer are moved into the graph first.
    staged = db.index_stats(c)["staged"]
    while db.index_stats(c)["staged"] > 0:
        time.sleep(0.01)
    log(f"search ({staged} vectors were buffered for the graph)")
    samples, recalls = [], []
    for q, t_ in zip(queries, truth):
        t = time.perf_counter()
        hits = db.search(c, vector=q, k=a.k)
        samples.append(time.perf_counter() - t)
        recalls.append(recall([position[h["experience"]["id"]] for h in hits], t_))
    out["search_p50_us"], out["search_p99_us"] = micros(samples)
    out["recall_at_k"] = round(statistics.mean(recalls), 4)

    log("filtered search")
    # Truths first: numpy's BLAS threads spin for a while after a product,
    # and would take the CPU from the searches measured right after.
    topic_of = np.array(topics)
    filtered = []
    for n, q in enumerate(queries):
        topic = f"t{n % TOPICS}"
        eligible = np.flatnonzero(topic_of == topic)
        filtered.append((topic, eligible[np.argsort(-(matrix[eligible] @ q))[:a.k]]))
    samples, recalls, full = [], [], 0
    for q, (topic, expected) in zip(queries, filtered):
        t = time.perf_counter()
        hits = db.search(c, vector=q, k=a.k, filter={"tags_all": {"topic": topic}})
        samples.append(time.perf_counter() - t)
        full += len(hits) == a.k
        recalls.append(recall([position[h["experience"]["id"]] for h in hits], expected))
    out["filtered_search_p50_us"], _ = micros(samples)
    out["filtered_recall_at_k"] = round(statistics.mean(recalls), 4)
    out["filtered_full_k"] = round(full / len(queries), 4)

    log("close and reopen")
    t = time.perf_counter()
    db.close()
    out["close_ms"] = round((time.perf_counter() - t) * 1e3, 1)
    t = time.perf_counter()
    db = pulsedb.open(path, dimension=a.dim)
    db.search(c, vector=queries[0], k=a.k)
    out["reopen_ms"] = round((time.perf_counter() - t) * 1e3, 1)
    db.close()
    size = sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(workdir) for f in files)
    out["bytes_per_exp"] = round(size / len(ids))
    shutil.rmtree(workdir)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
