"""The store as a Ray actor: one named, restartable actor per run in a fixed namespace."""

from __future__ import annotations

import ray

from scorer_service.config import StoreConfig
from scorer_service.ray.block_tasks import ray_block_map
from scorer_service.store import HardnessStore

NAMESPACE = "curriculum"
_PREFIX = "hardness-store:"


# Read-only calls a client may send to the "query" concurrency group, so a score query does not
# wait behind queued ingests and snapshots (it may then see a batch half applied: fine for reads).
QUERY_METHODS = frozenset(
    {"info", "samples", "top", "histogram", "round_summaries", "round_subset", "column"}
)


def _remote(cls: type) -> ray.actor.ActorClass:
    # num_cpus=0: the store must not take a CPU slot from the trainers (with 2 CPUs they need both).
    # max_task_retries=-1: calls pending when the actor dies are retried on the restarted actor.
    # Every state change stays in the default group, which runs one call at a time, in order.
    return ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, concurrency_groups={"query": 2})(cls)


HardnessStoreActor = _remote(HardnessStore)


def actor_name(run: str) -> str:
    return _PREFIX + run


def create_store(
    config: StoreConfig, *, replace: bool = True, store_cls: type = HardnessStore
) -> ray.actor.ActorHandle:
    """Create the run's store actor (detached, so scores stay queryable after the job ends).

    An existing store of the same run name is killed first when ``replace`` is true; otherwise
    it is an error, so a new run never silently mixes into an old run's scores. ``store_cls``
    may be a subclass of :class:`HardnessStore` (extra bookkeeping, instrumentation).
    """
    name = actor_name(config.run)
    try:
        old = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        old = None
    if old is not None:
        if not replace:
            raise ValueError(f"a store for run {config.run!r} already exists")
        ray.kill(old, no_restart=True)
    actor_cls = HardnessStoreActor if store_cls is HardnessStore else _remote(store_cls)
    # Diversity blocks go to idle CPUs of the cluster as Ray tasks (threads when there are none).
    handle = actor_cls.options(name=name, namespace=NAMESPACE, lifetime="detached").remote(
        config, block_map=ray_block_map
    )
    ray.get(handle.info.remote())
    return handle


def get_store(run: str) -> ray.actor.ActorHandle:
    """Handle of a running store; ``KeyError`` when the run has none."""
    try:
        return ray.get_actor(actor_name(run), namespace=NAMESPACE)
    except ValueError:
        raise KeyError(f"no store for run {run!r}") from None


def list_runs() -> list[str]:
    """Names of the runs that have a live store on the cluster."""
    names = ray.util.list_named_actors(all_namespaces=True)
    return sorted(
        a["name"][len(_PREFIX) :]
        for a in names
        if a.get("namespace") == NAMESPACE and a["name"].startswith(_PREFIX)
    )


def delete_store(run: str) -> None:
    """Kill a run's store (its scores are gone unless snapshotted)."""
    ray.kill(get_store(run), no_restart=True)
