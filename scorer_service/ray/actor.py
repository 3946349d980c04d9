"""The store as Ray actors: one named, restartable coordinator per run in a fixed namespace, and, for a
store of S > 1 shards, S named shard actors spread over the nodes (a store of one shard keeps it in
the coordinator's process, as one actor)."""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import ray

from scorer_service.config import StoreConfig
from scorer_service.config.components import bounds
from scorer_service.core.errors import NotFound, RunExists
from scorer_service.core.wire.batch import NAMESPACE, SHARD_PREFIX, STORE_PREFIX, actor_name, shard_name
from scorer_service.core.wire.interface import is_read_only
from scorer_service.ray.block_tasks import ray_block_map
from scorer_service.ray.shards import RayShards
from scorer_service.shard import StoreShard
from scorer_service.sizing import auto_shards
from scorer_service.store import HardnessStore

# Threads for ingest calls: while some wait for the fsync covering their batch, others log and apply
# theirs, so the batches of many writers share one fsync (group commit). 16 writers with the
# recorder's 8 sends in flight each keep about this many calls at the store.
INGEST_THREADS = 32
# How long a store being deleted may take to complete its snapshot in progress (a large one on slow storage).
CLOSE_TIMEOUT_S = 60.0


def read_only_methods(cls: type) -> set[str]:
    """Names of ``cls``'s methods marked :func:`~scorer_service.core.wire.interface.read_only` by it or by a
    class it derives from (an override keeps the mark of the method it overrides)."""
    return {name for base in cls.__mro__ for name, fn in vars(base).items() if is_read_only(fn)}


def _in_group(cls: type, name: str, group: str) -> Any:
    """``cls``'s method ``name`` as an actor method of concurrency group ``group``."""
    method = getattr(cls, name)

    def grouped(self: Any, *args: Any, **kwargs: Any) -> Any:
        return method(self, *args, **kwargs)

    # Ray reads the group from the function it finds after following __wrapped__, so this function
    # takes the method's name, text and signature (its arguments are checked where it is called)
    # but not functools.wraps' link to it.
    grouped.__name__, grouped.__qualname__, grouped.__doc__ = name, method.__qualname__, method.__doc__
    grouped.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return ray.method(concurrency_group=group)(grouped)


def actor_class(cls: type) -> ray.actor.ActorClass:
    """``cls`` (a store, a shard, or a stand-in for one) as an actor class whose ``ingest`` runs in the
    "ingest" group and whose read-only methods run in the "query" group (so a score query does not
    wait behind queued ingests; the store's read lock makes each answer come from one state)."""
    methods = {name: _in_group(cls, name, "query") for name in read_only_methods(cls)}
    methods["ingest"] = _in_group(cls, "ingest", "ingest")
    grouped = type(cls.__name__, (cls,), methods)
    # num_cpus=0: the store must not take a CPU slot from the trainers (with 2 CPUs they need both).
    # max_task_retries=-1: calls pending when the actor dies are retried on the restarted actor.
    # Every other change stays in the default group, which runs one call at a time, in order; the
    # store's change lock keeps them apart from ingests, and orders each writer's batches.
    groups = {"query": 2, "ingest": INGEST_THREADS}
    return ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, concurrency_groups=groups)(grouped)


HardnessStoreActor = actor_class(HardnessStore)
# A shard's queries run beside its ingests, as the coordinator's (a read lock gives each answer one state).
StoreShardActor = actor_class(StoreShard)


def _describe(handle: ray.actor.ActorHandle, run: str) -> str:
    try:
        info = ray.get(handle.info.remote(), timeout=10)
    except Exception:
        return f"run {run!r} already has a store (not answering)"
    done, total = info.rounds_completed, info.epochs
    state = "finished" if done >= total else "in progress"
    return f"run {run!r} already exists and is {state} ({done}/{total} rounds)"


def refusal(handle: ray.actor.ActorHandle, run: str) -> RunExists:
    """Why a new run named ``run`` cannot be created over the live store ``handle``, and what to do."""
    return RunExists(
        f"{_describe(handle, run)}; attach to it (curriculum train --resume {run}, curriculum.attach_run) "
        "or replace it (curriculum train --replace, create_run(..., replace=True))"
    )


def create_store(
    config: StoreConfig,
    *,
    replace: bool = False,
    store_cls: type = HardnessStore,
    shard_cls: type = StoreShard,
) -> ray.actor.ActorHandle:
    """Create the run's store actor (detached, so scores stay queryable after the job ends).

    A run whose store exists is refused with :class:`RunExists` (naming its state), so a new run
    never destroys or mixes into another; ``replace=True`` kills the old store first (its snapshots
    stay on disk). ``store_cls`` and ``shard_cls`` may be subclasses of :class:`HardnessStore` and
    :class:`StoreShard` (instrumentation; the shard class for stores of several shards).
    """
    name = actor_name(config.run)
    try:
        old = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        old = None
    if old is not None:
        if not replace:
            raise refusal(old, config.run)
        _retire(old)
    _kill_shards(config.run)  # the old store's, or those of a creation that failed half-way
    if config.sharding.store_shards == 0:
        config = config.with_settings(store_shards=auto_shards(config, _node_memory()))
    actor_cls = HardnessStoreActor if store_cls is HardnessStore else actor_class(store_cls)
    # Diversity blocks go to idle CPUs of the cluster as Ray tasks (threads when there are none).
    shards = _create_shards(config, shard_cls) if config.sharding.store_shards > 1 else None
    handle = actor_cls.options(name=name, namespace=NAMESPACE, lifetime="detached").remote(
        config, block_map=ray_block_map, shards=shards
    )
    ray.get(handle.info.remote())
    return handle


def _node_memory() -> list[float]:
    """Memory of each live node of the cluster, in bytes."""
    return [n["Resources"].get("memory", 0.0) for n in ray.nodes() if n.get("Alive")]


def _create_shards(config: StoreConfig, shard_cls: type) -> RayShards:
    """The store's shard actors, spread over the nodes, each restoring its own snapshots and log."""
    actor_cls = StoreShardActor if shard_cls is StoreShard else actor_class(shard_cls)
    handles = [
        actor_cls.options(
            name=shard_name(config.run, i),
            namespace=NAMESPACE,
            lifetime="detached",
            scheduling_strategy="SPREAD",
        ).remote(config, i, block_map=ray_block_map)
        for i in range(config.sharding.store_shards)
    ]
    ray.get([h.info_part.remote() for h in handles])
    return RayShards(handles, bounds(config))


def get_shards(run: str, count: int) -> list[ray.actor.ActorHandle]:
    """Handles of a running store's ``count`` shard actors, in id order."""
    try:
        return [ray.get_actor(shard_name(run, i), namespace=NAMESPACE) for i in range(count)]
    except ValueError:
        raise NotFound(f"no store shards for run {run!r}") from None


def _kill_shards(run: str) -> None:
    for a in ray.util.list_named_actors(all_namespaces=True):
        if a.get("namespace") == NAMESPACE and a["name"].startswith(f"{SHARD_PREFIX}{run}:"):
            ray.kill(ray.get_actor(a["name"], namespace=NAMESPACE), no_restart=True)


def get_store(run: str) -> ray.actor.ActorHandle:
    """Handle of a running store; :class:`NotFound` (a ``KeyError``) when the run has none."""
    try:
        return ray.get_actor(actor_name(run), namespace=NAMESPACE)
    except ValueError:
        raise NotFound(f"no store for run {run!r}") from None


def list_runs() -> list[str]:
    """Names of the runs that have a live store on the cluster."""
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        a["name"][len(STORE_PREFIX) :]
        for a in names
        if a.get("namespace") == NAMESPACE and a["name"].startswith(STORE_PREFIX)
    )


def _retire(handle: ray.actor.ActorHandle) -> None:
    """Kill a store once it has completed the snapshot it was writing and closed its logs, so that
    nothing of it writes afterwards (its snapshot directory may be removed next). A store that does not
    answer within ``CLOSE_TIMEOUT_S`` is killed as it is."""
    with contextlib.suppress(ray.exceptions.RayError):
        ray.get(handle.close.remote(), timeout=CLOSE_TIMEOUT_S)
    ray.kill(handle, no_restart=True)


def delete_store(run: str) -> None:
    """Close and kill a run's store and its shards (its scores are gone unless snapshotted)."""
    _retire(get_store(run))
    _kill_shards(run)
