"""A run on the driver side: create or attach to a run's store, read its scores, hand out samplers."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import ray

from curriculum._internal.ray_endpoint import ActorEndpoint
from scorer_service.config import StoreConfig, run_config
from scorer_service.core.errors import NotFound
from scorer_service.core.state import COLUMNS, Sample
from scorer_service.core.wire.answers import LabelIssue, RoundSummary, RunInfo, RunSummary, TopEntry
from scorer_service.ray.actor import NAMESPACE, create_store, delete_store, get_store, list_runs


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (default: ``RAY_ADDRESS``, else start a local one), once.

    Processes this one starts later (Lightning's DDP workers, ...) join the same cluster. A process
    already connected stays on its cluster.

    Args:
        address: the cluster's address (``ray://HOST:10001``, ``HOST:6379``, ``auto``); None reads
            ``RAY_ADDRESS`` and starts a local cluster when that is unset.

    Raises:
        ConnectionError: no cluster answers at ``address``.

    Example::

        curriculum.connect("auto")
        run = curriculum.attach_run("cifar-dihcl")
    """
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE)
        os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address


class Run:
    """A run's store on the cluster: its configuration, scores and rounds.

    :func:`create_run` and :func:`attach_run` return one; :class:`~curriculum.client.Client` has the
    same methods over REST.

    Args:
        name: the run's name; its store must be live on the cluster (:func:`connect` first joins it).

    Raises:
        NotFound: no store for run ``name``.

    Example::

        run = curriculum.Run("cifar-dihcl")
        print(run.info().ingested, run.top("dih", k=5))
        hardest = run.scores(("dih",))["dih"].argsort()[::-1][:100]
    """

    def __init__(self, name: str) -> None:
        connect()
        self.name = name
        self.endpoint = ActorEndpoint(name, get_store(name))

    @property
    def config(self) -> StoreConfig:
        return StoreConfig.from_dict(self.info().config)

    def info(self) -> RunInfo:
        """Counters and settings: samples ingested, rounds selected and completed, ..."""
        return self.endpoint.info()

    def rounds(self) -> list[RoundSummary]:
        """Each round: size, selector, selection time, ingested samples and recorded metrics."""
        return self.endpoint.round_summaries()

    def subset(self, round_: int) -> np.ndarray:
        """Every id trained on in ``round_``."""
        page = self.endpoint.round_subset(round_, 0, 2**62)
        return np.asarray(page.ids, dtype=np.int64)

    def scores(self, columns: tuple[str, ...] = tuple(COLUMNS)) -> dict[str, np.ndarray]:
        """Whole score columns by name (``dih``, ``last_loss``, ``seen``, ...)."""
        return {name: self.endpoint.column(name) for name in columns}

    def samples(self, ids: Any) -> list[Sample]:  # type: ignore[valid-type]
        """Every score of each sample in ``ids``."""
        return self.endpoint.samples(np.asarray(ids, dtype=np.int64))

    def top(self, metric: str = "dih", k: int = 50, order: str = "desc") -> list[TopEntry]:
        """The ``k`` hardest (``desc``) or easiest (``asc``) samples by ``metric``."""
        return self.endpoint.top(metric, k, order)

    def label_issues(self, threshold: float = 0.5, limit: int = 100) -> list[LabelIssue]:
        """Samples whose label is likely wrong, most likely first (noise probability, label, prediction)."""
        return self.endpoint.label_issues(threshold, limit)

    def snapshot(self) -> int:
        """Write a snapshot of the store now; returns its number."""
        return self.endpoint.snapshot()

    def delete(self) -> None:
        """Stop the run's store once the snapshot it is writing is complete; its snapshots stay on disk."""
        delete_store(self.name)

    def runs(
        self, state: str | None = None, method: str | None = None, prefix: str | None = None
    ) -> list[RunSummary]:
        """The runs of the cluster with their state (``running`` / ``finished``) and counters,
        filtered by state, selector and name prefix."""
        out = []
        for name in list_runs():
            if prefix and not name.startswith(prefix):
                continue
            try:
                info = ActorEndpoint(name, get_store(name)).info()
            except NotFound:
                continue  # deleted between listing and asking
            if (not state or info.state == state) and (not method or info.method == method):
                out.append(info.summary())
        return out

    def create_run(
        self, name: str, n: int, *, num_classes: int | None = None, replace: bool = False, **settings: Any
    ) -> Run:
        """Create another run on this cluster (see :func:`create_run`) and return its handle."""
        return create_run(name, n, num_classes=num_classes, replace=replace, **settings)


def create_run(
    name: str,
    n: int,
    *,
    num_classes: int | None = None,
    replace: bool = False,
    **settings: Any,
) -> Run:
    """Create the store of a new run of ``n`` training samples and return its :class:`Run`.

    Joins the cluster first (:func:`connect`). A run whose store exists is refused unless
    ``replace`` (see :func:`attach_run`).

    Args:
        name: the run's name: it names the store's actor and its snapshot directory.
        n: training samples; the trainers' sample ids are ``0 .. n-1``.
        num_classes: classes of the labels; required by methods that read the logits (DoCL).
        replace: stop a live store of the same name and start afresh.
        **settings: :class:`~scorer_service.config.StoreConfig` settings by flat name (as its flags
            spell them) or nested by group: ``epochs``, ``method``,
            ``metric``, ``warm_start``, ``cycle_length``, the budget and diversity settings, ``seed``,
            ``correct`` (False when the trainers send no correctness, e.g. a regression loss),
            ``snapshot_dir`` (default ``$CURRICULUM_SNAPSHOT_DIR`` or ``~/.curriculum/snapshots``;
            needed to resume after a failure), ...

    Returns:
        The new run's handle.

    Raises:
        RunExists: a store of that name is live and ``replace`` is False.
        ValueError: a name that cannot name a directory, an unknown setting, or a value of the
            wrong type or out of range.

    Example::

        run = curriculum.create_run("cifar-dihcl", n=50_000, epochs=200, method="dihcl-exp")
    """
    config = run_config(name, n, num_classes=num_classes, **settings)
    connect()
    create_store(config, replace=replace)
    return Run(name)


def attach_run(name: str) -> Run:
    """The :class:`Run` of an existing store, joining the cluster first (:func:`connect`).

    Args:
        name: the run's name.

    Returns:
        The run's handle.

    Raises:
        NotFound: no store for run ``name`` (a ``KeyError``).

    Example::

        run = curriculum.attach_run("cifar-dihcl")
        print(run.rounds()[-1])
    """
    connect()
    return Run(name)


def serve(port: int = 8000, token: str | None = None, *, host: str = "127.0.0.1") -> str:
    """Deploy the REST API (Ray Serve) on the cluster this process is connected to (:func:`connect`
    first when it is not) and return its URL. It returns once the API answers; the API keeps
    running on the cluster after this process ends (``ray.serve.shutdown()`` stops it).

    Args:
        port: the HTTP port on this node.
        token: the all-runs admin token (default: ``CURRICULUM_API_TOKEN``); only its hash reaches
            the deployment. Scoped tokens: ``curriculum token create`` or ``POST /v1/tokens``.
        host: the bind address (``0.0.0.0`` to expose it).

    Returns:
        The API's base URL, e.g. ``http://127.0.0.1:8000``.

    Raises:
        RuntimeError: the API did not come up.

    Example::

        url = curriculum.serve(port=8000, token="s3cret")
        client = curriculum.Client(url, token="s3cret", run="cifar-dihcl")
    """
    connect()
    # Serve and FastAPI load only in a process that serves.
    from scorer_service.ray.serve import start

    return start(host, port, token=token)
