"""The job entrypoint: create the run's store, run the TorchTrainer, print progress from the store."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from scorer_service.config import default_snapshot_dir, new_incarnation
from scorer_service.core.wire.answers import RoundSummary, RunInfo
from scorer_service.ray.actor import NAMESPACE, create_store, get_store, refusal
from trainers.datasets import Dataset, load_dataset
from trainers.loop import train_loop_per_worker
from trainers.plain import RoundLog, round_log_name
from trainers.resume import drop_unkept_checkpoints, save_config, train_name
from trainers.train_config import TrainConfig


def init_ray(address: str | None = None, *, quiet: bool = True) -> None:
    """Join ``address`` / ``RAY_ADDRESS`` (set under ``ray job submit``), else start a local Ray."""
    if quiet:
        # Ray Train logs every report at INFO; the store's progress lines say the same, once.
        logging.getLogger("ray.train").setLevel(logging.WARNING)
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=not quiet)
    else:
        ray.init(address="local", namespace=NAMESPACE, include_dashboard=False, log_to_driver=not quiet)


def format_round(s: RoundSummary, epochs: int, ingest_rate: float) -> str:
    m = s.metrics
    return (
        f"round {s.round + 1:>3}/{epochs}  cycle {s.cycle:>2}  subset {s.size:>7}  "
        f"train loss {m.get('train_loss', float('nan')):.4f}  "
        f"test acc {100 * m.get('test_accuracy', 0):6.2f}%  "
        f"select {s.selection_ms:7.2f} ms  ingest {ingest_rate / 1e6:5.2f}M samples/s"
    )


def prepare(cfg: TrainConfig) -> TrainConfig:
    """Fill in where a fresh run keeps its state: a new incarnation under the snapshot directory."""
    return cfg.replace(
        snapshot_dir=cfg.durability.snapshot_dir or default_snapshot_dir(),
        incarnation=cfg.durability.incarnation if cfg.durability.incarnation != "0" else new_incarnation(),
        storage_path=cfg.storage_path or os.path.expanduser("~/ray_results"),
    )


def open_store(cfg: TrainConfig, data: Dataset, *, replace: bool, resume: bool) -> ray.actor.ActorHandle:
    """The run's store: a new one (restoring the run's snapshots when resumed), or, when resuming a
    run whose store is still live, that store (the sampler rewinds it to the checkpoint's round)."""
    if resume and not replace:
        try:
            live = get_store(cfg.run)
        except KeyError:
            live = None
        if live is not None:
            if ray.get(live.info.remote()).config["incarnation"] != cfg.durability.incarnation:
                raise refusal(live, cfg.run)  # another run of the same name
            return live
    return create_store(cfg.store_config(data.n, data.num_classes), replace=replace)


def _trainer(cfg: TrainConfig, max_failures: int) -> TorchTrainer:
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=cfg.to_dict(),
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.gpu),
        run_config=RunConfig(
            name=train_name(cfg),
            storage_path=cfg.storage_path,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
        ),
    )


class Progress:
    """Prints (``out``) each round the store records and calls ``on_round`` with it, polling the store
    every ``every_s`` from :meth:`follow` until :attr:`stop` is set."""

    def __init__(
        self,
        store: ray.actor.ActorHandle,
        epochs: int,
        out: Callable[[str], None],
        on_round: Callable[[RoundSummary, ray.actor.ActorHandle], None] | None,
        every_s: float = 0.5,
    ) -> None:
        self.store, self.epochs, self.out, self.on_round, self.every_s = store, epochs, out, on_round, every_s
        self.stop = threading.Event()
        self.error: BaseException | None = None
        # A resumed run's store already holds the finished rounds: report only the new ones.
        self.printed = sum(1 for s in ray.get(store.round_summaries.remote()) if s.metrics)

    def poll(self) -> tuple[list[RoundSummary], list[RoundSummary]]:
        """Report the rounds recorded since the last poll; the run's summaries and recorded rounds.

        One call per look, and the run's info only when a round is new: the store shares the cores with
        the trainers, and every call it answers takes a moment of them."""
        summaries = ray.get(self.store.round_summaries.remote())
        done = [s for s in summaries if s.metrics]
        if len(done) > self.printed:
            rate = self.info().ingest_samples_per_s
            for s in done[self.printed :]:
                self.out(format_round(s, self.epochs, rate))
                if self.on_round is not None:
                    self.on_round(s, self.store)
        self.printed = len(done)
        return summaries, done

    def info(self) -> RunInfo:
        return ray.get(self.store.info.remote())

    def follow(self) -> None:
        try:
            while not self.stop.wait(self.every_s):
                self.poll()
        except BaseException as e:  # raised on the training thread once training ends
            self.error = e

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def _run_plain(
    cfg: TrainConfig, data: Dataset, trainer: TorchTrainer, t0: float, out: Callable[[str], None]
) -> dict[str, Any]:
    """Train with no store (``--plain``): every sample every round; the rounds' metrics come from
    Ray Train's reports."""
    out(f"run {cfg.run}: {data.name}, n={data.n}, plain training (no store), {cfg.epochs} rounds")
    # ray.remote made the class an actor class, which mypy does not see through a class decorator.
    log = RoundLog.options(name=round_log_name(cfg.run), namespace=NAMESPACE).remote()  # type: ignore[attr-defined]
    try:
        # Started before training, as a run's store is: the floor's first round does not wait for a
        # worker process to start (about 0.5 s here, as long as the rest of a 15-round run on digits).
        ray.get(log.all.remote())
        trainer.fit()
        rounds = sorted(ray.get(log.all.remote()), key=lambda r: r["round"])
    finally:
        ray.kill(log)
    for r in rounds:
        out(
            f"round {int(r['round']) + 1:>3}/{cfg.epochs}  subset {int(r['samples']):>7}  "
            f"train loss {r['train_loss']:.4f}  test acc {100 * r['test_accuracy']:6.2f}%"
        )
    passes = int(sum(r["samples"] for r in rounds))
    final = rounds[-1]["test_accuracy"] if rounds else None
    summary = {
        "run": cfg.run,
        "method": "plain",
        "rounds": len(rounds),
        "final_test_accuracy": final,
        "best_test_accuracy": max((r["test_accuracy"] for r in rounds), default=None),
        "sample_passes": passes,
        "epochs_equivalent": passes / data.n,
        "round_metrics": rounds,
        "wall_s": time.perf_counter() - t0,
    }
    out(
        f"done: final test accuracy {100 * (final or 0):.2f}%, {passes} sample passes, "
        f"{summary['wall_s']:.1f} s"
    )
    return summary


def run_training(
    cfg: TrainConfig,
    *,
    max_failures: int = 1,
    store: ray.actor.ActorHandle | None = None,
    replace: bool = False,
    resume: bool = False,
    out: Callable[[str], None] = print,
    on_round: Callable[[RoundSummary, ray.actor.ActorHandle], None] | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` on the connected Ray cluster; returns the final summary.

    ``cfg.workers == 0`` runs the same loop in Ray Train's local mode (one process, no DDP).
    ``store`` is the run's store actor when the caller created it, else a fresh one is made (for a
    resumed run, one that restores the run's incarnation from its snapshots); a live store of the
    same run name is refused unless ``replace``, or attached to when ``resume`` (it must be this
    run's incarnation).
    ``on_round(summary, store)`` is called in the driver once per finished round, while training
    goes on (benchmarks read score columns as the run proceeds).
    """
    t0 = time.perf_counter()
    cfg = prepare(cfg)
    data = load_dataset(cfg.dataset, cfg.seed)
    if cfg.plain:
        return _run_plain(cfg, data, _trainer(cfg, max_failures), t0, out)
    if store is None:
        store = open_store(cfg, data, replace=replace, resume=resume)
    save_config(cfg)
    out(
        f"run {cfg.run}: {data.name}, n={data.n}, {data.num_classes} classes, method {cfg.method} "
        f"(metric {cfg.metric}), {cfg.epochs} rounds, workers {cfg.num_workers}"
    )
    trainer = _trainer(cfg, max_failures)
    progress = Progress(store, cfg.epochs, out, on_round)
    # Training runs on the calling thread and progress is read on another. In local mode the loop's
    # torch thread pool then belongs to the caller's thread and is reused by every run; one more pool
    # per training thread beside the caller's oversubscribes the cores (measured: full-data rounds
    # through the store 1.4x slower after one --plain run in the same process).
    poller = threading.Thread(target=progress.follow, name="curriculum-progress", daemon=True)
    poller.start()
    try:
        result = trainer.fit()
    finally:
        progress.stop.set()
        poller.join()
    summaries, done = progress.poll()  # the rounds recorded since the poller's last look
    info = progress.info()
    progress.raise_error()
    kept = result.best_checkpoints
    if kept is not None:  # local mode keeps no record of checkpoints
        assert cfg.storage_path is not None  # prepare() filled it in
        drop_unkept_checkpoints(cfg.storage_path, train_name(cfg), [c for c, _ in kept])

    final = done[-1].metrics if done else {}
    passes = sum(s.size for s in summaries)
    summary = {
        "run": cfg.run,
        "method": cfg.method,
        "metric": cfg.metric,
        "rounds": len(done),
        "final_test_accuracy": final.get("test_accuracy"),
        "best_test_accuracy": max((s.metrics.get("test_accuracy", 0.0) for s in done), default=None),
        "sample_passes": passes,
        "epochs_equivalent": passes / data.n,
        "ingested": info.ingested,
        "wall_s": time.perf_counter() - t0,
    }
    out(
        f"done: final test accuracy {100 * (summary['final_test_accuracy'] or 0):.2f}% "
        f"(best {100 * (summary['best_test_accuracy'] or 0):.2f}%), {passes} sample passes "
        f"= {summary['epochs_equivalent']:.1f} epochs of full data, {info.ingested} byproducts ingested, "
        f"{summary['wall_s']:.1f} s"
    )
    return summary
