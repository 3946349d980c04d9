"""Consistent reads under load: REST clients hammer every read route and export while writers ingest and
the store selects, rewinds and snapshots.

Its own local Ray and Serve. A durable store (snapshot every 0.5 s and at every round's end) is driven
by 2 writer threads the way 2 ranks of a training job drive it: each round they fetch their shard,
send it in batches with up to 8 in flight, and rank 0 records the round; every 5th round an attempt
is lost half way and rank 0 rewinds the store to the round before. The loss a writer sends is the
step's number, so in every consistent state each seen sample has ``last_loss == last_seen_step`` and
``dih == 0.95 * last_loss / lr(step) + 0.05 * dih_prev``; a read that mixed two states (a column
copied before a batch, the next after it) breaks them. 4 clients send requests to every read route
and export for ``--seconds`` and check each answer against itself; prints a ``RESULT`` JSON line and
exits non-zero on any error or disagreement.

    python tests/cases/stress.py [--seconds 65]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import ray  # noqa: E402

from scorer_service.config import StoreConfig  # noqa: E402
from scorer_service.ray.actor import NAMESPACE, create_store  # noqa: E402
from tests.helpers import free_ports  # noqa: E402

N = 20_000
RUN = "stress"
BATCH = 500
WINDOW = 8
REWIND_EVERY = 5
GAMMA = 0.95


def lr_of(step: np.ndarray | int) -> np.ndarray:
    """The learning rate of a step: a pure function of it, so both ranks report the same one."""
    return 0.01 * (1 + np.asarray(step) % 7)


class Writers:
    """Two ranks training round after round, losing an attempt now and then."""

    def __init__(self, store: ray.actor.ActorHandle, stop_at: float) -> None:
        self.store, self.stop_at = store, stop_at
        # Each barrier's action decides whether to go on, so both ranks stop after the same round: each
        # reading the clock for itself, one could stop while the other waits for it at a barrier forever.
        self.barrier = threading.Barrier(2, action=self._decide)
        self.going = True
        self.step = 0  # the next global step, agreed by both ranks at each round's start
        self.rewinds: list[list[float]] = []  # [start, end] of each rewind (monotonic; end inf: running)
        self.rounds = 0
        self.error: BaseException | None = None

    def run(self, rank: int) -> None:
        try:
            round_, attempt = 0, 0
            while self.going:
                lose = round_ % REWIND_EVERY == REWIND_EVERY - 1 and attempt == 0
                self._round(rank, round_, attempt, partial=lose)
                self.barrier.wait()
                if lose:  # the attempt died half way: rank 0 rewinds, then the round is trained again
                    if rank == 0:
                        self.rewinds.append([time.monotonic(), float("inf")])
                        assert ray.get(self.store.rewind.remote(round_ - 1)) is True
                        self.rewinds[-1][1] = time.monotonic()
                    attempt += 1
                else:
                    if rank == 0:
                        ray.get(self.store.record_round.remote(round_, {"test_accuracy": 0.5}))
                        self.rounds += 1
                    round_, attempt = round_ + 1, 0
                self.barrier.wait()
        except BaseException as e:
            self.error = e
            self.barrier.abort()

    def _decide(self) -> None:
        self.going = time.time() < self.stop_at

    def _round(self, rank: int, round_: int, attempt: int, partial: bool) -> None:
        shard = np.asarray(ray.get(self.store.subset.remote(round_, rank, 2)), dtype=np.int64)
        start = self.step
        self.barrier.wait()  # both ranks have read the round's first step
        batches = range(0, len(shard), BATCH)
        if partial:
            batches = batches[: max(1, len(batches) // 2)]
        in_flight: list[ray.ObjectRef] = []
        for b, lo in enumerate(batches):
            ids = shard[lo : lo + BATCH]
            step = np.full(len(ids), start + b, dtype=np.int64)
            data = {
                "sample_id": ids,
                "loss": step.astype(np.float32),  # what the reads check against last_seen_step
                "correct": ids % 2 == 0,
                "step": step,
                "lr": lr_of(step),
                "round": round_,
                "rank": rank,
                "writer": f"rank{rank}-round{round_}-attempt{attempt}",
                "seq": b,
            }
            if len(in_flight) >= WINDOW:
                ready, in_flight = ray.wait(in_flight, num_returns=1)
                ray.get(ready)
            in_flight.append(self.store.ingest.remote(data))
        ray.get(in_flight)
        self.barrier.wait()
        if rank == 0 and not partial:
            self.step = start + len(range(0, len(shard), BATCH))
        elif rank == 0:
            self.step = start  # a lost attempt's steps are forgotten by the rewind


class Checker:
    """Requests to every read route; counts errors and answers that disagree with themselves."""

    ROUTES = (
        *("info", "runs", "health", "sample", "samples", "top"),
        *("histogram", "rounds", "subset", "export", "metrics"),
    )

    def __init__(self, url: str, writers: Writers, stop_at: float, seed: int) -> None:
        self.url, self.writers, self.stop_at = url, writers, stop_at
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []
        self.disagreements: list[str] = []
        self.last_seen: dict[int, tuple[float, int]] = {}  # sample -> (when read started, seen)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while time.time() < self.stop_at:
                route = self.rng.choice(self.ROUTES)
                t0 = time.monotonic()
                try:
                    getattr(self, f"_{route}")(client, t0)
                except AssertionError as e:
                    self.disagreements.append(f"{route}: {e}")
                except Exception as e:  # a transport error or an error status
                    self.errors.append(f"{route}: {type(e).__name__}: {e}")
                self.counts[route] += 1

    def _get(self, client: httpx.Client, path: str, **params: object) -> httpx.Response:
        r = client.get(path, params=params or None)
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {path} {params}: {r.text[:300]}")
        return r

    def _check_rows(self, rows: dict[str, np.ndarray]) -> None:
        seen, step = rows["seen"], rows["last_seen_step"]
        loss = np.asarray(rows["last_loss"], dtype=np.float64)
        assert np.array_equal(seen == 0, step == -1), "seen and last_seen_step disagree"
        hit = seen > 0
        assert np.array_equal(np.isnan(loss), ~hit), "last_loss and seen disagree"
        assert np.array_equal(loss[hit], step[hit]), "last_loss and last_seen_step are of two batches"
        dih = GAMMA * loss[hit] / lr_of(step[hit]) + (1 - GAMMA) * np.asarray(rows["dih_prev"])[hit]
        assert np.allclose(rows["dih"][hit], dih, rtol=1e-9), "dih is not its update from dih_prev"

    def _check_seen(self, ids: list[int], seen: list[int], t0: float) -> None:
        """``seen`` never decreases between two reads of a client, unless a rewind came between."""
        for i, s in zip(ids, seen, strict=True):
            if i in self.last_seen:
                before, s0 = self.last_seen[i]
                rewound = any(end >= before for _, end in self.writers.rewinds)
                assert s >= s0 or rewound, f"sample {i}: seen went from {s0} to {s} with no rewind"
            self.last_seen[i] = (t0, s)

    def _sample_rows(self, samples: list[dict], t0: float) -> None:
        keys = ("seen", "last_seen_step", "last_loss", "dih", "dih_prev")
        rows = {k: np.array([np.nan if s[k] is None else s[k] for s in samples]) for k in keys}
        rows["seen"], rows["last_seen_step"] = rows["seen"].astype(int), rows["last_seen_step"].astype(int)
        self._check_rows(rows)
        self._check_seen([s["id"] for s in samples], [s["seen"] for s in samples], t0)

    def _info(self, client: httpx.Client, t0: float) -> None:
        info = self._get(client, f"/v1/runs/{RUN}").json()
        assert info["rounds_completed"] <= info["rounds"], f"rounds_completed > rounds: {info}"
        assert info["ingested"] >= 0 and info["batches"] * BATCH >= info["ingested"], info

    def _runs(self, client: httpx.Client, t0: float) -> None:
        for info in self._get(client, "/v1/runs").json():
            assert info["rounds_completed"] <= info["rounds"], f"rounds_completed > rounds: {info}"

    def _health(self, client: httpx.Client, t0: float) -> None:
        h = self._get(client, "/v1/health").json()
        assert h["status"] == "ok" and RUN in h["runs"], h

    def _sample(self, client: httpx.Client, t0: float) -> None:
        i = self.rng.randrange(N)
        self._sample_rows([self._get(client, f"/v1/runs/{RUN}/samples/{i}").json()], t0)

    def _samples(self, client: httpx.Client, t0: float) -> None:
        ids = self.rng.sample(range(N), 200)
        self._sample_rows(
            self._get(client, f"/v1/runs/{RUN}/samples", ids=",".join(map(str, ids))).json(), t0
        )

    def _top(self, client: httpx.Client, t0: float) -> None:
        metric = self.rng.choice(["dih", "seen", "last_loss"])
        top = self._get(client, f"/v1/runs/{RUN}/top", metric=metric, k=500).json()
        values = [t[metric] for t in top]
        assert values == sorted(values, reverse=True), f"top {metric} out of order"
        assert len({t["id"] for t in top}) == len(top), "top lists a sample twice"

    def _histogram(self, client: httpx.Client, t0: float) -> None:
        h = self._get(client, f"/v1/runs/{RUN}/histogram", metric="last_loss", bins=30).json()
        assert sum(h["counts"]) + h["missing"] == N, f"histogram counts {sum(h['counts'])} + {h['missing']}"

    def _rounds(self, client: httpx.Client, t0: float) -> None:
        rounds = self._get(client, f"/v1/runs/{RUN}/rounds").json()
        assert [r["round"] for r in rounds] == list(range(len(rounds))), "rounds are not 0..R-1"
        done = [bool(r["metrics"]) for r in rounds]
        assert done == sorted(done, reverse=True), "a round has metrics after one without"
        for r in rounds:
            if r["metrics"]:  # a completed round ingested every sample it selected, once
                assert r["ingested"] == r["size"], (
                    f"round {r['round']}: ingested {r['ingested']} of {r['size']}"
                )

    def _subset(self, client: httpx.Client, t0: float) -> None:
        page = self._get(client, f"/v1/runs/{RUN}/rounds/0/subset", limit=10_000, offset=0).json()
        assert page["total"] == N and len(page["ids"]) == min(N, 10_000), page["total"]
        assert len(set(page["ids"])) == len(page["ids"]), "a subset lists a sample twice"

    def _export(self, client: httpx.Client, t0: float) -> None:
        fmt = self.rng.choice(["parquet", "csv"])
        r = self._get(client, f"/v1/runs/{RUN}/export", format=fmt)
        buf = io.BytesIO(r.content)
        table = pq.read_table(buf) if fmt == "parquet" else pacsv.read_csv(buf)
        assert table.num_rows == N == int(r.headers["x-row-count"]), table.num_rows
        rows = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
        rows["last_loss"] = np.asarray(table.column("last_loss").to_pandas(), dtype=np.float64)
        self._check_rows(rows)

    def _metrics(self, client: httpx.Client, t0: float) -> None:
        text = self._get(client, "/metrics").text
        values = {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("curriculum_rounds") and f'run="{RUN}"' in line
        }
        assert values["curriculum_rounds_completed"] <= values["curriculum_rounds"], values


def main(seconds: float) -> int:
    from scorer_service.ray.serve import start

    snapshots = tempfile.mkdtemp(prefix="stress-snapshots-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE)
    try:
        config = StoreConfig.create(
            n=N, epochs=100_000, run=RUN, method="dihcl-rand", metric="loss", gamma=GAMMA, warm_start=1,
            cycle_length=3, snapshot_dir=snapshots, snapshot_every_s=0.5, incarnation="stress",
        )  # fmt: skip
        store = create_store(config)
        ray.get(store.subset.remote(0, 0, 2))  # round 0 exists before the first read asks for it
        url = start("127.0.0.1", free_ports(1)[0])
        httpx.get(f"{url}/v1/health", timeout=60).raise_for_status()
        t_start = time.time()
        stop_at = t_start + seconds
        writers = Writers(store, stop_at)
        checkers = [Checker(url, writers, stop_at, seed) for seed in range(4)]
        threads = [threading.Thread(target=writers.run, args=(rank,)) for rank in (0, 1)]
        threads += [threading.Thread(target=c.run) for c in checkers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t_start
        info = ray.get(store.info.remote())
        snaps = ray.get(store.__ray_call__.remote(lambda s: s.journal.seq))
    finally:
        ray.shutdown()
        shutil.rmtree(snapshots, ignore_errors=True)
    counts = sum((c.counts for c in checkers), Counter())
    errors = [e for c in checkers for e in c.errors]
    disagreements = [d for c in checkers for d in c.disagreements]
    result = {
        "seconds": round(elapsed, 1),
        "responses": sum(counts.values()),
        "by_route": dict(sorted(counts.items())),
        "errors": len(errors),
        "disagreements": len(disagreements),
        "rounds_recorded": writers.rounds,
        "rewinds": len(writers.rewinds),
        "ingested": info.ingested,
        "batches": info.batches,
        "snapshots_taken": snaps,
        "writer_error": repr(writers.error) if writers.error else None,
        "load_avg_1m": os.getloadavg()[0],
    }
    for line in (errors + disagreements)[:20]:
        print("PROBLEM", line)
    print("RESULT " + json.dumps(result), flush=True)
    ok = not errors and not disagreements and writers.error is None
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=65.0)
    sys.exit(main(p.parse_args().seconds))
