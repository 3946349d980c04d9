"""curriculum: a central hardness store that decides what every trainer trains on next.

Driver side::

    run = curriculum.create_run("cifar-dihcl", n=len(train_set), epochs=200, method="dihcl-exp")

Worker side (any Ray Train loop, or a torchrun process joined to the cluster)::

    sampler = curriculum.RoundSampler("cifar-dihcl")
    loader = DataLoader(curriculum.WithIds(train_set), batch_size=256, sampler=sampler)
    recorder = sampler.recorder(optimizer)
    for rnd in range(sampler.start_round, sampler.epochs):
        sampler.set_epoch(rnd)
        for ids, x, y in loader:
            ...
            recorder.observe(ids, loss_per_sample, logits=logits, labels=y)
        recorder.end_round({"val_acc": acc})
"""

from scorer_service.config import StoreConfig
from scorer_service.core.errors import InvalidBatch, InvalidQuery, NotFound
from scorer_service.ray.actor import RunExists
from trainers.ids import WithIds
from trainers.recorder import Recorder
from trainers.run import Run, attach_run, connect, create_run
from trainers.sampler import RoundSampler

__all__ = [
    "InvalidBatch",
    "InvalidQuery",
    "NotFound",
    "Recorder",
    "RoundSampler",
    "Run",
    "RunExists",
    "StoreConfig",
    "WithIds",
    "attach_run",
    "connect",
    "create_run",
]
