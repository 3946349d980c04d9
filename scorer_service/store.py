"""The hardness store of one run: ingest byproducts, select each round once, answer queries.

Plain Python over :class:`~scorer_service.state.SampleState`; ``scorer_service.actor`` wraps it
in a Ray actor unchanged.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from scorer_service.byproducts import ByproductBatch
from scorer_service.docl import docl_observation, docl_update
from scorer_service.errors import InvalidBatch, InvalidQuery, NotFound
from scorer_service.hardness import HARDNESS_METRICS, dih_update, instantaneous_hardness
from scorer_service.persistence import RunStorage
from scorer_service.sampling import top_k
from scorer_service.schedule import Budget, Cycles
from scorer_service.selectors import DEFAULT_BUDGETS, SelectionContext, get_selector
from scorer_service.sharding import shard, usable_size
from scorer_service.state import METRICS, LearningRateLog, SampleState
from scorer_service.submodular import FUNCTIONS, OPTIMIZERS, select_diverse
from scorer_service.submodular.partition import MapFn

HISTOGRAM_BINS = 20
# The per-sample score each selector ranks by, used as the modular term of the diversity objective.
SCORE_OF = {"docl": "docl", "spl": "last_loss", "random": "seen"}


@dataclass
class StoreConfig:
    """Everything that determines a run's scores and selections (with the seed, reproducibly)."""

    n: int
    epochs: int
    run: str = "run"
    # The training data's spec (as given to the trainers): lets the dashboard show sample images.
    dataset: str = ""
    method: str = "dihcl-exp"
    metric: str = "loss"
    gamma: float = 0.95
    warm_start: int = 5
    cycle_length: int = 5
    # None: the selector's own schedule (shrinking for DIHCL, growing for DoCL / SPL / MCL).
    budget_start: float | None = None
    budget_factor: float | None = None
    budget_floor: float | None = None
    budget_cap: float | None = None
    # Cyclical training (DoCL): the first round of every selection cycle trains on all data.
    full_pass_each_cycle: bool = False
    # Diversity (DIHCL Eq. 3): after the selector, keep ``diversity_keep`` of its pick maximizing
    # hardness + lambda_c * G(S), G = "fl" | "fl-knn" | "feature" on embedding sketches, lambda_c =
    # diversity_lambda * diversity_decay**(cycle - 1). MCL always uses G ("fl" unless set). Solved by
    # diversity_optimizer: "stochastic" (lazier than lazy greedy at diversity_epsilon), "lazy" or "naive".
    diversity: str = "none"
    diversity_keep: float = 0.4
    diversity_lambda: float = 1.0
    diversity_decay: float = 0.8
    diversity_optimizer: str = "stochastic"
    diversity_epsilon: float = 0.1
    seed: int = 0
    selector_params: dict[str, Any] = field(default_factory=dict)
    # Widths of the per-sample vectors kept (0: not kept): outputs for DoCL, embedding for diversity.
    output_width: int = 0
    embedding_dim: int = 0
    # Initial instance log temperature (Data Parameters); 0 is sigma = 1.
    log_sigma_init: float = 0.0
    # Durability: where snapshots and the write-ahead log go (None: memory only). ``incarnation``
    # tells a fresh run from an earlier run of the same name; a restarted actor keeps it and so
    # restores its own state.
    snapshot_dir: str | None = None
    incarnation: str = "0"
    snapshot_every_s: float = 60.0
    keep_snapshots: int = 3

    def __post_init__(self) -> None:
        get_selector(self.method)
        if self.metric not in HARDNESS_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {', '.join(HARDNESS_METRICS)}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        # Build both once so that a bad layout fails here, at run creation, not at round 5.
        _ = (self.cycles, self.budget)
        if self.diversity not in ("none", *FUNCTIONS):
            raise ValueError(
                f"unknown diversity {self.diversity!r}; expected none or one of {', '.join(FUNCTIONS)}"
            )
        if self.diversity != "none" and not self.embedding_dim:
            raise ValueError("diversity needs embedding sketches: set embedding_dim")
        if not 0.0 < self.diversity_keep <= 1.0:
            raise ValueError(f"diversity_keep must be in (0, 1], got {self.diversity_keep}")
        if not (math.isfinite(self.diversity_lambda) and self.diversity_lambda >= 0.0):
            raise ValueError(f"diversity_lambda must be a finite number >= 0, got {self.diversity_lambda}")
        if not 0.0 < self.diversity_decay <= 1.0:
            raise ValueError(f"diversity_decay must be in (0, 1], got {self.diversity_decay}")
        if self.diversity_optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown diversity_optimizer {self.diversity_optimizer!r}; "
                f"expected one of {', '.join(sorted(OPTIMIZERS))}"
            )
        if not 0.0 < self.diversity_epsilon < 1.0:
            raise ValueError(f"diversity_epsilon must be in (0, 1), got {self.diversity_epsilon}")

    @property
    def cycles(self) -> Cycles:
        return Cycles(self.epochs, self.warm_start, self.cycle_length)

    @property
    def budget(self) -> Budget:
        base = DEFAULT_BUDGETS.get(self.method, Budget())
        given = {
            "start": self.budget_start,
            "factor": self.budget_factor,
            "floor": self.budget_floor,
            "cap": self.budget_cap,
        }
        return replace(base, **{k: v for k, v in given.items() if v is not None})


@dataclass
class RoundRecord:
    round: int
    cycle: int
    selector: str
    budget: int
    selected: np.ndarray
    world_size: int
    selection_ms: float
    ingested: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    # DIH distribution at selection time, so the rounds' score distributions can be compared later.
    dih_histogram: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """The ids trained on: the selection trimmed to equal rank shards."""
        return self.selected[: usable_size(len(self.selected), self.world_size)]

    def summary(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "cycle": self.cycle,
            "selector": self.selector,
            "budget": self.budget,
            "size": int(len(self.ids)),
            "world_size": self.world_size,
            "selection_ms": self.selection_ms,
            "ingested": self.ingested,
            "metrics": dict(self.metrics),
            "dih_histogram": self.dih_histogram,
        }


class AppliedSequences:
    """Which sequence numbers of each writer were applied: everything up to ``low`` plus a set above it.

    A set rather than a maximum, so a retried call that overtakes a later one is still applied once.
    """

    def __init__(self, state: dict[str, list] | None = None) -> None:
        self.low: dict[str, int] = {}
        self.above: dict[str, set[int]] = {}
        for writer, (low, above) in (state or {}).items():
            self.low[writer], self.above[writer] = low, set(above)

    def __contains__(self, key: tuple[str, int]) -> bool:
        writer, seq = key
        return seq <= self.low.get(writer, -1) or seq in self.above.get(writer, ())

    def add(self, writer: str, seq: int) -> None:
        above = self.above.setdefault(writer, set())
        above.add(seq)
        low = self.low.get(writer, -1)
        while low + 1 in above:
            low += 1
            above.discard(low)
        self.low[writer] = low

    def state(self) -> dict[str, list]:
        return {w: [self.low[w], sorted(self.above.get(w, ()))] for w in self.low}


class HardnessStore:
    """Per-sample scores of one run and its round-by-round subset selection.

    With ``config.snapshot_dir`` every acknowledged change is durable: it is appended to a
    write-ahead log before it is applied, the state is snapshotted at each round's end and every
    ``snapshot_every_s``, and a new instance with the same config (a restarted actor) restores
    the latest snapshot and replays the log after it.
    """

    def __init__(self, config: StoreConfig, *, block_map: MapFn | None = None) -> None:
        self.config = config
        # How diversity blocks are solved (partitioned selection's map_fn); None: a thread pool.
        self._block_map = block_map
        self._widths = {"outputs": config.output_width, "embedding": config.embedding_dim}
        self._scratch = np.zeros(config.n, dtype=np.int64)
        self._selector = get_selector(config.method)
        self._reset()
        self._storage: RunStorage | None = None
        self._replaying = False
        self._snap_seq = 0
        self._round_end: dict[int, int] = {}  # completed round -> snapshot seq
        self._last_snapshot = time.time()
        if config.snapshot_dir:
            self._storage = RunStorage(config.snapshot_dir, config.run, config.incarnation)
            self._restore()

    def _reset(self) -> None:
        """The run's initial state: no observation, no round."""
        cfg = self.config
        self.state = SampleState(
            cfg.n,
            output_width=cfg.output_width,
            embedding_dim=cfg.embedding_dim,
            log_sigma_init=cfg.log_sigma_init,
        )
        self.lr_log = LearningRateLog()
        self.rounds: dict[int, RoundRecord] = {}
        self.applied = AppliedSequences()
        self.counters = {"ingested": 0, "batches": 0, "rejected": 0, "duplicates": 0}
        self.ingest_seconds = 0.0

    # ---- ingest -------------------------------------------------------------------------

    def ingest(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate and apply one byproduct batch; a rejected batch changes nothing.

        Returns ``{"applied": rows, "duplicate": bool}``; a batch whose ``(writer, seq)`` was
        already applied is acknowledged and ignored, so retried sends count once.
        """
        t0 = time.perf_counter()
        try:
            batch, new_lrs = self._validate(data)
        except InvalidBatch:
            self.counters["rejected"] += 1
            raise
        if batch is None:
            self.counters["duplicates"] += 1
            return {"applied": 0, "duplicate": True}
        self._log(
            {
                "kind": "ingest",
                "round": batch.round,
                "rank": batch.rank,
                "writer": batch.writer,
                "seq": batch.seq,
            },
            {c: data[c] for c in data if isinstance(data[c], np.ndarray)},
        )
        self._apply(batch, new_lrs)
        self.ingest_seconds += time.perf_counter() - t0
        due = time.time() - self._last_snapshot > self.config.snapshot_every_s
        if due and self._storage is not None and not self._replaying:
            self.snapshot()
        return {"applied": len(batch), "duplicate": False}

    def _validate(self, data: dict[str, Any]) -> tuple[ByproductBatch | None, np.ndarray]:
        batch = ByproductBatch.from_mapping(data, self.config.n, self._widths, self._scratch)
        if (batch.writer, batch.seq) in self.applied:
            return None, np.zeros(0)
        last = self.state.last_seen_step[batch.sample_id]
        stale = batch.step < last
        if np.any(stale):
            i = int(np.argmax(stale))
            raise InvalidBatch(
                f"sample {int(batch.sample_id[i])} observed at step {int(batch.step[i])}, "
                f"but it was already observed at the later step {int(last[i])}"
            )
        try:
            new_lrs = self.lr_log.plan(batch.step, batch.lr)
        except ValueError as e:
            raise InvalidBatch(str(e)) from None
        return batch, new_lrs

    def _apply(self, batch: ByproductBatch, new_lrs: np.ndarray) -> None:
        s, ids = self.state, batch.sample_id
        self.lr_log.append(new_lrs)
        first = s.seen[ids] == 0
        last_step = np.where(first, batch.step, s.last_seen_step[ids])
        prev_correct = s.last_correct[ids]
        a, update = instantaneous_hardness(
            self.config.metric,
            batch.loss,
            batch.correct,
            batch.lr,
            s.last_loss[ids].astype(np.float64),
            prev_correct,
            self.lr_log.since(last_step, batch.step),
            first,
        )
        a = a * s.importance[ids]
        s.dih_prev[ids[update]] = s.dih[ids[update]]
        s.dih[ids[update]] = dih_update(s.dih[ids[update]], a[update], self.config.gamma)
        if "logit_sketch" in batch.extra:
            self._apply_docl(batch, self.lr_log.since(last_step, batch.step))
        if "embedding" in batch.extra:
            s.embedding[ids] = batch.extra["embedding"]
        for name in ("log_sigma", "log_sigma_momentum"):
            if name in batch.extra:
                s.columns[name][ids] = batch.extra[name]

        flip = ~first & (batch.correct.astype(np.int8) != prev_correct)
        s.flips[ids] += flip
        s.beta_alpha[ids] += flip
        s.beta_beta[ids] += ~first & ~flip
        s.last_loss[ids] = batch.loss
        s.last_correct[ids] = batch.correct
        s.last_seen_step[ids] = batch.step
        s.last_seen_round[ids] = batch.round
        s.seen[ids] += 1

        self.applied.add(batch.writer, batch.seq)
        self.counters["ingested"] += len(batch)
        self.counters["batches"] += 1
        if batch.round in self.rounds:
            self.rounds[batch.round].ingested += len(batch)

    def _apply_docl(self, batch: ByproductBatch, lr_since: np.ndarray) -> None:
        """DoCL score: <residual, z_now - z_prev> over LR progress, averaged (official code, §2.2)."""
        s, ids = self.state, batch.sample_id
        now = batch.extra["logit_sketch"]
        count = s.outputs_seen[ids]
        has_prev = count > 0
        if np.any(has_prev) and "residual_sketch" in batch.extra:
            scored = ids[has_prev]
            a = docl_observation(
                batch.extra["residual_sketch"][has_prev], now[has_prev], s.outputs[scored], lr_since[has_prev]
            )
            s.docl[scored] = docl_update(s.docl[scored], a, count[has_prev] == 1)
        s.outputs[ids] = now
        s.outputs_seen[ids] = count + 1

    def parameters(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Instance data parameters (log sigma and its momentum) of ``ids``, for a rank's shard."""
        ids = self._check_ids(ids)
        return {
            "log_sigma": self.state.log_sigma[ids],
            "log_sigma_momentum": self.state.log_sigma_momentum[ids],
        }

    # ---- selection ----------------------------------------------------------------------

    def subset(self, round_: int, rank: int, world_size: int) -> np.ndarray:
        """Rank ``rank``'s shard of round ``round_``'s subset.

        The selection runs once, on the first request for the round (so every rank's
        byproducts of the previous round must be in before any rank asks), and is cached.
        """
        if not 0 <= round_ < self.config.epochs:
            raise InvalidQuery(f"round must be in [0, {self.config.epochs}), got {round_}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InvalidQuery(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        rec = self.rounds.get(round_)
        if rec is None:
            self._log({"kind": "select", "round": round_, "world": world_size})
            rec = self._select(round_, world_size)
            self.rounds[round_] = rec
        elif rec.world_size != world_size:
            # A different world size (elastic training) re-shards the same selection.
            self._log({"kind": "world", "round": round_, "world": world_size})
            rec.world_size = world_size
        return shard(rec.ids, rank, world_size)

    def _select(self, round_: int, world_size: int) -> RoundRecord:
        t0 = time.perf_counter()
        cfg, n = self.config, self.config.n
        cycle = cfg.cycles.selection_cycle(round_)
        rng = np.random.default_rng([cfg.seed, round_])
        self.state.importance[:] = 1.0
        full_pass = cfg.full_pass_each_cycle and round_ == cfg.cycles.bounds(cfg.cycles.cycle_of(round_))[0]
        if cycle == 0 or full_pass:
            selected, name, k = self._warm_order(round_, rng, world_size), "all", n
        else:
            k = max(world_size, cfg.budget.size(cycle, n))
            params = {
                "diversity": "fl" if cfg.diversity == "none" else cfg.diversity,
                "diversity_lambda": cfg.diversity_lambda,
                "diversity_decay": cfg.diversity_decay,
                "diversity_optimizer": cfg.diversity_optimizer,
                "diversity_epsilon": cfg.diversity_epsilon,
                **cfg.selector_params,
            }
            sel = self._selector(SelectionContext(self.state, cycle, rng, params, self._block_map), k)
            selected, name = sel.ids, cfg.method
            if sel.importance is not None:
                self.state.importance[sel.ids] = sel.importance
            if cfg.diversity != "none" and cfg.method != "mcl":
                selected = self._diversify(selected, cycle, rng, world_size)
                name = f"{cfg.method}+{cfg.diversity}"
        ms = (time.perf_counter() - t0) * 1e3
        counts, edges = np.histogram(self.state.dih, bins=HISTOGRAM_BINS)
        hist = {"counts": counts.tolist(), "edges": edges.tolist()}
        return RoundRecord(
            round_, cycle, name, k, np.asarray(selected, np.int64), world_size, ms, dih_histogram=hist
        )

    def _diversify(
        self, ids: np.ndarray, cycle: int, rng: np.random.Generator, world_size: int
    ) -> np.ndarray:
        """Keep ``diversity_keep`` of the selector's pick by hardness + lambda * diversity (DIHCL Eq. 3)."""
        cfg = self.config
        keep = min(len(ids), max(world_size, round(cfg.diversity_keep * len(ids))))
        lam = cfg.diversity_lambda * cfg.diversity_decay ** (cycle - 1)
        hardness = self.state.metric(SCORE_OF.get(cfg.method, "dih"))[ids]
        if cfg.method == "spl":
            hardness = -hardness  # SPL prefers easy samples: smaller loss scores higher
        hardness = np.nan_to_num(hardness, nan=0.0)
        pos = select_diverse(
            self.state.embedding[ids],
            hardness,
            keep,
            function=cfg.diversity,
            lam=lam,
            optimizer=cfg.diversity_optimizer,
            epsilon=cfg.diversity_epsilon,
            rng=rng,
            map_fn=self._block_map,
        )
        return ids[pos]

    def _warm_order(self, round_: int, rng: np.random.Generator, world_size: int) -> np.ndarray:
        """A fresh permutation of all samples, led by those trimmed from the previous round.

        Equal shards drop ``n mod world_size`` samples per round; putting last round's dropped
        samples first guarantees every sample is trained on during a warm start of >= 2 rounds.
        """
        order = rng.permutation(self.config.n)
        prev = self.rounds.get(round_ - 1)
        if prev is None:
            return order
        dropped = prev.selected[len(prev.ids) :]
        keep = np.ones(self.config.n, dtype=bool)
        keep[dropped] = False
        return np.concatenate([dropped, order[keep[order]]])

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        """Attach the trainer's end-of-round metrics (test accuracy, train loss, ...) to a round."""
        if round_ not in self.rounds:
            raise NotFound(f"round {round_} was never selected")
        bad = {k: v for k, v in metrics.items() if not isinstance(v, int | float) or isinstance(v, bool)}
        if bad:
            raise InvalidQuery(f"metrics must be numbers, got {bad}")
        self._log({"kind": "record", "round": round_, "metrics": metrics})
        self.rounds[round_].metrics.update({k: float(v) for k, v in metrics.items()})
        if self._storage is not None and not self._replaying:
            self.snapshot(completed_round=round_)

    # ---- durability ---------------------------------------------------------------------

    def _log(self, header: dict[str, Any], columns: dict[str, np.ndarray] | None = None) -> None:
        if self._storage is not None and not self._replaying:
            self._storage.append(header, columns)

    def snapshot(self, completed_round: int | None = None) -> int:
        """Write a snapshot now (atomically) and start a new log after it; returns its number."""
        if self._storage is None:
            raise InvalidQuery("this store has no snapshot_dir")
        seq = self._snap_seq + 1
        if completed_round is None:
            completed_round = max((r for r, rec in self.rounds.items() if rec.metrics), default=-1)
        else:
            self._round_end[completed_round] = seq
        meta = {
            "created": time.time(),
            "completed_round": completed_round,
            "round_end": dict(self._round_end),
            "applied": self.applied.state(),
            "counters": self.counters,
            "config": asdict(self.config),
        }
        columns = {**self.state.columns, **self.state.matrices}
        steps = {"lr": self.lr_log.lr.copy(), "cum_before": self.lr_log.cum[:-1].copy()}
        meta["cum_total"] = float(self.lr_log.cum[-1])
        self._storage.write_snapshot(seq, meta, columns, _rounds_table(self.rounds), steps)
        self._storage.start_log(seq, fresh=True)
        self._snap_seq, self._last_snapshot = seq, time.time()
        recent = sorted(self._round_end.values())[-self.config.keep_snapshots :]
        self._storage.drop({seq, *recent})
        self._round_end = {r: s for r, s in self._round_end.items() if s in recent or s == seq}
        return seq

    def _load(self, seq: int) -> dict[str, Any]:
        manifest = next(m for m in self._storage.snapshots() if m["seq"] == seq)
        columns, rounds, steps = self._storage.read_snapshot(seq)
        for name, values in columns.items():
            target = self.state.matrices if values.ndim == 2 else self.state.columns
            target[name] = values.astype(target[name].dtype)
        self.rounds = _rounds_from_table(rounds)
        self.lr_log = LearningRateLog()
        self.lr_log.restore(steps["lr"], np.append(steps["cum_before"], manifest["cum_total"]))
        self.applied = AppliedSequences(manifest["applied"])
        self.counters = dict(manifest["counters"])
        self._round_end = {int(r): s for r, s in manifest["round_end"].items()}
        # Sequence numbers only grow: a rewound store must not reuse the numbers of the lost attempt.
        self._snap_seq = max(self._snap_seq, seq)
        return manifest

    def _restore(self) -> None:
        snaps = self._storage.snapshots()
        if not snaps:
            # The initial state is snapshot 1, so a run can be rewound to before its first round.
            self.snapshot(completed_round=-1)
            return
        seq = snaps[-1]["seq"]
        saved = snaps[-1]["config"]
        mine = asdict(self.config)
        differ = [
            k
            for k in ("n", "method", "metric", "epochs", "output_width", "embedding_dim")
            if saved[k] != mine[k]
        ]
        if differ:
            # Restoring another run's scores would silently mix two runs (or fail later on n).
            raise ValueError(
                f"the snapshots of run {self.config.run!r} (incarnation {self.config.incarnation!r}) under "
                f"{self.config.snapshot_dir} were written with a different {', '.join(differ)}; "
                "start the run with a new incarnation or run name"
            )
        self._load(seq)
        self._replaying = True
        try:
            for header, columns in self._storage.read_log(seq):
                kind = header["kind"]
                if kind == "ingest":
                    scalars = {k: header[k] for k in ("round", "rank", "writer", "seq")}
                    self.ingest({**columns, **scalars})
                elif kind in ("select", "world"):
                    self.subset(header["round"], 0, header["world"])
                elif kind == "record":
                    self.record_round(header["round"], header["metrics"])
        finally:
            self._replaying = False
        self._storage.start_log(seq)

    def rewind(self, completed_round: int) -> bool:
        """Return to the state at the end of ``completed_round`` (-1: before the first round).

        Every training attempt calls this first (rank 0), with the round of the checkpoint it
        starts from, so the store forgets what a lost attempt ingested and selected afterwards.
        A store that is not ahead is left as it is. Returns False, changing nothing, when the
        store is ahead but keeps no snapshots to return to; raises when that round's snapshot
        is gone.
        """
        if not any(r > completed_round for r in self.rounds):
            return True
        if completed_round < 0:
            # Back to the beginning needs no snapshot: it is the initial state.
            self._reset()
            self._round_end = {}
            if self._storage is not None:
                self.snapshot(completed_round=-1)
            return True
        if self._storage is None:
            return False
        seq = self._round_end.get(completed_round)
        if seq is None:
            raise InvalidQuery(
                f"no snapshot of the end of round {completed_round} (kept: {sorted(self._round_end)})"
            )
        self._load(seq)
        self._round_end = {r: s for r, s in self._round_end.items() if r <= completed_round}
        self.snapshot()
        return True

    # ---- queries ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        cfg = self.config
        done = [r for r, rec in self.rounds.items() if rec.metrics]
        return {
            "run": cfg.run,
            "n": cfg.n,
            "method": cfg.method,
            "metric": cfg.metric,
            "epochs": cfg.epochs,
            "rounds": len(self.rounds),
            "rounds_completed": len(done),
            "steps": self.lr_log.num_steps,
            **self.counters,
            "ingest_samples_per_s": self.counters["ingested"] / self.ingest_seconds
            if self.ingest_seconds
            else 0.0,
            "config": asdict(cfg),
        }

    def _check_ids(self, ids: np.ndarray) -> np.ndarray:
        try:
            ids = np.asarray(ids, dtype=np.int64)
        except (OverflowError, ValueError):
            raise NotFound(f"sample ids must be integers in [0, {self.config.n})") from None
        bad = (ids < 0) | (ids >= self.config.n)
        if np.any(bad):
            raise NotFound(f"sample {int(ids[np.argmax(bad)])} does not exist (n = {self.config.n})")
        return ids

    def samples(self, ids: np.ndarray | list[int]) -> list[dict[str, Any]]:
        """Every score column of each sample in ``ids``."""
        ids = self._check_ids(np.asarray(ids))
        rows = self.state.rows(ids)
        return [{"id": int(i), **{k: _py(v[j]) for k, v in rows.items()}} for j, i in enumerate(ids.tolist())]

    def _metric(self, metric: str) -> np.ndarray:
        if metric not in METRICS:
            raise InvalidQuery(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        return self.state.metric(metric)

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[dict[str, Any]]:
        """The ``k`` samples with the largest (``desc``) or smallest (``asc``) ``metric``; unseen excluded
        for metrics that are undefined before a first observation."""
        if order not in ("asc", "desc"):
            raise InvalidQuery(f"order must be 'asc' or 'desc', got {order!r}")
        values = self._metric(metric)
        valid = np.flatnonzero(np.isfinite(values))
        pick = valid[top_k(values[valid], min(k, valid.size), largest=order == "desc")]
        return [{"id": int(i), metric: float(values[i])} for i in pick]

    def histogram(self, metric: str = "dih", bins: int = 20) -> dict[str, Any]:
        """Counts of ``metric`` in ``bins`` equal-width bins over its finite range."""
        values = self._metric(metric)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return {"metric": metric, "counts": [], "edges": [], "missing": int(values.size)}
        counts, edges = np.histogram(finite, bins=bins)
        return {
            "metric": metric,
            "counts": counts.tolist(),
            "edges": edges.tolist(),
            "missing": int(values.size - finite.size),
        }

    def round_summaries(self) -> list[dict[str, Any]]:
        return [self.rounds[r].summary() for r in sorted(self.rounds)]

    def round_subset(self, round_: int, offset: int = 0, limit: int = 1000) -> dict[str, Any]:
        """The ids trained on in ``round_``, paged."""
        rec = self.rounds.get(round_)
        if rec is None:
            raise NotFound(f"round {round_} was never selected")
        if offset < 0 or limit < 0:
            raise InvalidQuery("offset and limit must be >= 0")
        ids = rec.ids
        return {
            "round": round_,
            "total": int(len(ids)),
            "offset": offset,
            "ids": ids[offset : offset + limit].tolist(),
        }

    def column(self, name: str) -> np.ndarray:
        """One whole state column (for export and tests)."""
        if name not in self.state.columns:
            raise InvalidQuery(f"unknown column {name!r}")
        return self.state.columns[name].copy()


def _rounds_table(rounds: dict[int, RoundRecord]) -> pa.Table:
    recs = [rounds[r] for r in sorted(rounds)]
    return pa.table(
        {
            "round": pa.array([r.round for r in recs], pa.int64()),
            "cycle": pa.array([r.cycle for r in recs], pa.int64()),
            "selector": pa.array([r.selector for r in recs], pa.string()),
            "budget": pa.array([r.budget for r in recs], pa.int64()),
            "world_size": pa.array([r.world_size for r in recs], pa.int64()),
            "selection_ms": pa.array([r.selection_ms for r in recs], pa.float64()),
            "ingested": pa.array([r.ingested for r in recs], pa.int64()),
            "metrics": pa.array([json.dumps(r.metrics) for r in recs], pa.string()),
            "dih_histogram": pa.array([json.dumps(r.dih_histogram) for r in recs], pa.string()),
            "selected": pa.array([r.selected for r in recs], pa.list_(pa.int64())),
        }
    )


def _rounds_from_table(table: pa.Table) -> dict[int, RoundRecord]:
    out = {}
    for row in table.to_pylist():
        out[row["round"]] = RoundRecord(
            round=row["round"],
            cycle=row["cycle"],
            selector=row["selector"],
            budget=row["budget"],
            selected=np.asarray(row["selected"], dtype=np.int64),
            world_size=row["world_size"],
            selection_ms=row["selection_ms"],
            ingested=row["ingested"],
            metrics=json.loads(row["metrics"]),
            dih_histogram=json.loads(row["dih_histogram"]),
        )
    return out


def _py(v: Any) -> Any:
    """numpy scalar -> JSON-friendly Python value (NaN -> None)."""
    v = v.item()
    return None if isinstance(v, float) and v != v else v
