"""curriculum: a central hardness store that decides what every trainer trains on next.

Driver side::

    run = curriculum.create_run("cifar-dihcl", n=len(train_set), epochs=200, method="dihcl-exp")

Worker side (any Ray Train loop, a torchrun process joined to the cluster, or a trainer outside Ray
through ``curriculum.HttpEndpoint``)::

    sampler = curriculum.RoundSampler("cifar-dihcl")
    loader = DataLoader(curriculum.WithIds(train_set), batch_size=256, sampler=sampler)
    recorder = sampler.recorder(optimizer)
    for rnd in range(sampler.start_round, sampler.epochs):
        sampler.set_epoch(rnd)
        for ids, x, y in loader:
            ...
            recorder.observe(ids, loss_per_sample, logits=logits, labels=y)
        recorder.end_round({"val_acc": acc})

Outside the cluster, ``curriculum.Client(api, token=...)`` answers the same questions over REST
(``curriculum.serve(port=...)`` on the cluster deploys the API).

Names are imported on first use, so a trainer that talks HTTP never imports Ray, and Lightning is
only needed for the Lightning callback.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "CurriculumError": "scorer_service.core.errors",
    "InvalidBatch": "scorer_service.core.errors",
    "InvalidQuery": "scorer_service.core.errors",
    "NotFound": "scorer_service.core.errors",
    "StoreConfig": "scorer_service.config",
    "RunExists": "scorer_service.core.errors",
    "Conflict": "scorer_service.core.errors",
    "NotReady": "scorer_service.core.errors",
    "Unauthorized": "scorer_service.core.errors",
    "Forbidden": "scorer_service.core.errors",
    "StoreUnavailable": "scorer_service.core.errors",
    "Client": "curriculum.client",
    "serve": "curriculum.run",
    "WithIds": "curriculum.ids",
    "Recorder": "curriculum.recorder",
    "RoundSampler": "curriculum.sampler",
    "HttpEndpoint": "curriculum.http_endpoint",
    "Run": "curriculum.run",
    "attach_run": "curriculum.run",
    "connect": "curriculum.run",
    "create_run": "curriculum.run",
    "CurriculumCallback": "curriculum.lightning",
    "CurriculumDataModule": "curriculum.lightning",
}
__all__ = [
    "Client",
    "Conflict",
    "CurriculumCallback",
    "CurriculumError",
    "CurriculumDataModule",
    "Forbidden",
    "HttpEndpoint",
    "InvalidBatch",
    "InvalidQuery",
    "NotFound",
    "NotReady",
    "Recorder",
    "RoundSampler",
    "Run",
    "RunExists",
    "StoreConfig",
    "StoreUnavailable",
    "Unauthorized",
    "WithIds",
    "attach_run",
    "connect",
    "create_run",
    "serve",
]

if TYPE_CHECKING:
    from curriculum.client import Client
    from curriculum.http_endpoint import HttpEndpoint
    from curriculum.ids import WithIds
    from curriculum.lightning import CurriculumCallback, CurriculumDataModule
    from curriculum.recorder import Recorder
    from curriculum.run import Run, attach_run, connect, create_run, serve
    from curriculum.sampler import RoundSampler
    from scorer_service.config import StoreConfig
    from scorer_service.core.errors import (
        Conflict,
        CurriculumError,
        Forbidden,
        InvalidBatch,
        InvalidQuery,
        NotFound,
        NotReady,
        RunExists,
        StoreUnavailable,
        Unauthorized,
    )


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'curriculum' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
