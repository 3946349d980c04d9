"""Errors the store and the service raise: one hierarchy under :class:`CurriculumError`.

Each also derives from the built-in exception it refines (``ValueError``, ``KeyError``,
``PermissionError``, ``RuntimeError``), so ``except ValueError`` keeps catching a refused batch::

    CurriculumError
    ├── InvalidBatch (ValueError)       400: a byproduct batch the store refuses
    ├── InvalidQuery (ValueError)       400: a query parameter it cannot answer
    ├── Conflict (ValueError)           409: what the store's configuration does not allow
    │   ├── NotReady                    425: a round too far ahead of the scores
    │   └── RunExists                   409: a run of that name is live
    ├── NotFound (KeyError)             404: an unknown sample id, round, run or token
    ├── Unauthorized (PermissionError)  401: no token, or an unknown one
    ├── Forbidden (PermissionError)     403: a token that does not cover the request
    └── StoreUnavailable (RuntimeError) 503: a store that cannot answer now

Every transport raises the class the store raised, with its message: in-process, through Ray (the
Ray shells and the trainers' endpoint drop Ray's wrapper, :mod:`scorer_service.ray.errors`) and over
REST, whose error body names the class (``{"detail": ..., "type": "NotFound"}``) for the client to
raise it again (:data:`ERROR_TYPES`).
"""

from __future__ import annotations


class CurriculumError(Exception):
    """Base of every error the store and the service raise on purpose.

    Each subclass also derives from the built-in exception it refines, and reaches a caller as the
    same class in-process, through Ray and over REST.

    Example::

        try:
            run.top(metric="dih", k=10)
        except curriculum.CurriculumError as e:
            log.error("%s: %s", type(e).__name__, e)
    """


class InvalidBatch(CurriculumError, ValueError):
    """A byproduct batch that the store refuses; nothing of it was applied.

    Raised by the store's ``ingest`` (REST: 400), and in the trainer by
    :class:`~curriculum.recorder.Recorder` (``on_error="raise"``) at its next send or flush: ids out
    of range, columns of different lengths, steps whose learning rates disagree or leave a gap.

    Example::

        try:
            recorder.flush()
        except curriculum.InvalidBatch as e:
            log.error("the store refused a batch: %s", e)
    """


class InvalidQuery(CurriculumError, ValueError):
    """A query parameter the store cannot answer (unknown metric, bad range); REST: 400.

    Example::

        try:
            run.top(metric="nope")
        except curriculum.InvalidQuery as e:
            print(e)  # names the metrics there are
    """


class Conflict(CurriculumError, ValueError):
    """A well-formed request that the store's configuration does not allow (a snapshot of a store
    kept in memory only); REST: 409. :class:`NotReady` and :class:`RunExists` are kinds of it.

    Example::

        try:
            run.snapshot()
        except curriculum.Conflict:
            pass  # the run keeps no snapshots
    """


class NotReady(Conflict):
    """A round that may not be selected yet: the scores are further behind the trainers than the run's
    ``max_staleness`` allows. Ask again once more byproducts are in; REST: 425.

    :class:`~curriculum.sampler.RoundSampler` asks again by itself, for up to 600 s.

    Example::

        while True:
            try:
                subset = endpoint.subset(round_, rank, world_size, newest_step)
                break
            except curriculum.NotReady:
                time.sleep(0.01)
    """


class RunExists(Conflict):
    """A run of that name has a live store; creating it again would destroy it. REST: 409.

    Example::

        try:
            run = curriculum.create_run("cifar-dihcl", n=50_000, epochs=200)
        except curriculum.RunExists:
            run = curriculum.attach_run("cifar-dihcl")
    """


class NotFound(CurriculumError, KeyError):
    """An unknown sample id, round or run; a ``KeyError``. REST: 404.

    Example::

        try:
            run = curriculum.attach_run("cifar-dihcl")
        except curriculum.NotFound:
            run = curriculum.create_run("cifar-dihcl", n=50_000, epochs=200)
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class Unauthorized(CurriculumError, PermissionError):
    """A request without a bearer token, or with one the service does not know; REST: 401.

    Example::

        try:
            client.info()
        except curriculum.Unauthorized:
            sys.exit("set CURRICULUM_API_TOKEN to a token of this service")
    """


class Forbidden(CurriculumError, PermissionError):
    """A known token whose role or runs do not cover the request; REST: 403.

    Example::

        try:
            client.snapshot()
        except curriculum.Forbidden:
            print("this token may read the run but not write it")
    """


class StoreUnavailable(CurriculumError, RuntimeError):
    """The run's store exists but cannot answer now (it died and is restarting, or its node is gone);
    a ``RuntimeError``. REST: 503.

    Example::

        for attempt in range(5):
            try:
                info = run.info()
                break
            except curriculum.StoreUnavailable:
                time.sleep(2**attempt)
    """


# What a REST error's ``type`` may name: ValueError is a run's settings that create_run refuses.
ERROR_TYPES: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        InvalidBatch,
        InvalidQuery,
        Conflict,
        NotReady,
        RunExists,
        NotFound,
        Unauthorized,
        Forbidden,
        StoreUnavailable,
        ValueError,
    )
}
