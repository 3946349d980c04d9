"""The store as a Ray actor: one named, restartable actor per run in a fixed namespace."""

from __future__ import annotations

import ray

from scorer_service.config import StoreConfig
from scorer_service.core.errors import NotFound
from scorer_service.ray.block_tasks import ray_block_map
from scorer_service.store import HardnessStore

NAMESPACE = "curriculum"
_PREFIX = "hardness-store:"


# Read-only calls a client may send to the "query" concurrency group, so a score query does not
# wait behind queued ingests; the store's read lock makes each answer come from one state.
QUERY_METHODS = frozenset(
    {
        "info",
        "samples",
        "top",
        "histogram",
        "round_summaries",
        "round_subset",
        "column",
        "columns",
        "label_issues",
    }
)


def _remote(cls: type) -> ray.actor.ActorClass:
    # num_cpus=0: the store must not take a CPU slot from the trainers (with 2 CPUs they need both).
    # max_task_retries=-1: calls pending when the actor dies are retried on the restarted actor.
    # Every state change stays in the default group, which runs one call at a time, in order.
    return ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, concurrency_groups={"query": 2})(cls)


HardnessStoreActor = _remote(HardnessStore)


def actor_name(run: str) -> str:
    return _PREFIX + run


class RunExists(ValueError):
    """A run of that name has a live store; creating it again would destroy it."""


def _describe(handle: ray.actor.ActorHandle, run: str) -> str:
    try:
        info = ray.get(handle.info.remote(), timeout=10)
    except Exception:
        return f"run {run!r} already has a store (not answering)"
    done, total = info["rounds_completed"], info["epochs"]
    state = "finished" if done >= total else "in progress"
    return f"run {run!r} already exists and is {state} ({done}/{total} rounds)"


def refusal(handle: ray.actor.ActorHandle, run: str) -> RunExists:
    """Why a new run named ``run`` cannot be created over the live store ``handle``, and what to do."""
    return RunExists(
        f"{_describe(handle, run)}; attach to it (curriculum train --resume {run}, curriculum.attach_run) "
        "or replace it (curriculum train --replace, create_run(..., replace=True))"
    )


def create_store(
    config: StoreConfig, *, replace: bool = False, store_cls: type = HardnessStore
) -> ray.actor.ActorHandle:
    """Create the run's store actor (detached, so scores stay queryable after the job ends).

    A run whose store exists is refused with :class:`RunExists` (naming its state), so a new run
    never destroys or mixes into another; ``replace=True`` kills the old store first (its snapshots
    stay on disk). ``store_cls`` may be a subclass of :class:`HardnessStore` (instrumentation).
    """
    name = actor_name(config.run)
    try:
        old = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        old = None
    if old is not None:
        if not replace:
            raise refusal(old, config.run)
        ray.kill(old, no_restart=True)
    actor_cls = HardnessStoreActor if store_cls is HardnessStore else _remote(store_cls)
    # Diversity blocks go to idle CPUs of the cluster as Ray tasks (threads when there are none).
    handle = actor_cls.options(name=name, namespace=NAMESPACE, lifetime="detached").remote(
        config, block_map=ray_block_map
    )
    ray.get(handle.info.remote())
    return handle


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
        a["name"][len(_PREFIX) :]
        for a in names
        if a.get("namespace") == NAMESPACE and a["name"].startswith(_PREFIX)
    )


def delete_store(run: str) -> None:
    """Kill a run's store (its scores are gone unless snapshotted)."""
    ray.kill(get_store(run), no_restart=True)
