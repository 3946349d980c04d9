"""PyTorch Lightning: a callback that puts a run's sampler and recorder into a ``Trainer``.

``Trainer(callbacks=[callback, ...], reload_dataloaders_every_n_epochs=1, use_distributed_sampler=False)``
with :class:`CurriculumDataModule` (or a ``train_dataloader`` that returns
``callback.dataloader(dataset, batch_size=...)``): every epoch is a round; the module's
``training_step`` returns ``{"loss": mean, "per_sample_loss": ..., "logits": ...}`` for a batch
``(ids, x, y)``, the mean weighted by :meth:`CurriculumCallback.weights`; the callback records the
byproducts after each optimizer step, ends the round at the epoch's end (flush, barrier, record the
logged metrics) and keeps the sampler's position in Lightning's checkpoints, so a resumed fit
continues the curriculum where it stopped.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from curriculum.ids import WithIds
from curriculum.recorder import Recorder
from curriculum.sampler import RoundSampler


class CurriculumCallback(L.Callback):
    """Drives the curriculum of run ``run`` from a Lightning ``Trainer``.

    At ``fit`` it creates the rank's :class:`~curriculum.sampler.RoundSampler` and its recorder,
    moves the sampler to each epoch's round and records every training step's byproducts; its state
    travels in Lightning's checkpoints.

    Args:
        run: a run name, a :class:`~curriculum.run.Run` or an endpoint.
        **recorder_options: keyword arguments of :class:`~curriculum.recorder.Recorder`.

    Raises:
        ValueError: a ``Trainer`` that does not reload its dataloaders every epoch.

    Example::

        callback = curriculum.CurriculumCallback("cifar-dihcl")
        data = curriculum.CurriculumDataModule(train_set, callback, batch_size=256)
        trainer = L.Trainer(max_epochs=200, callbacks=[callback], reload_dataloaders_every_n_epochs=1)
        trainer.fit(model, datamodule=data)
    """

    def __init__(self, run: Any, **recorder_options: Any) -> None:
        self.run, self.recorder_options = run, recorder_options
        self.sampler: RoundSampler | None = None
        self.recorder: Recorder | None = None
        self._trainer: L.Trainer | None = None
        self._restored: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self.sampler is not None:
            return
        # Set on the Trainer by its data connector, which Lightning's annotations do not declare.
        if trainer.reload_dataloaders_every_n_epochs != 1:  # type: ignore[attr-defined]
            raise ValueError("each epoch trains on a new subset: use reload_dataloaders_every_n_epochs=1")
        self._trainer = trainer
        self.sampler = RoundSampler(self.run, rank=trainer.global_rank, world_size=trainer.world_size)
        if self._restored is not None:
            self.sampler.load_state_dict(self._restored)

    def dataloader(self, dataset: Any, **kwargs: Any) -> DataLoader[tuple[Any, ...]]:
        """A loader over this rank's slice of the current epoch's round; ``kwargs`` go to ``DataLoader``."""
        if self.sampler is None or self._trainer is None:
            raise RuntimeError("the callback is not set up yet: pass it to the Trainer's callbacks")
        # Resuming from a checkpoint taken at an epoch's end, Lightning still reports that epoch here
        # and moves on to the next one only afterwards; the sampler knows where the run continues.
        self.sampler.set_epoch(max(self._trainer.current_epoch, self.sampler.start_round))
        return DataLoader(WithIds(dataset), sampler=self.sampler, **kwargs)

    def weights(self, ids: Any, device: torch.device | str | None = None) -> torch.Tensor:
        """The loss weights of ``ids`` this round (:meth:`RoundSampler.weights`): ``training_step``
        returns ``(callback.weights(ids, loss.device) * per_sample_loss).mean()`` as its loss."""
        if self.sampler is None:
            raise RuntimeError("the callback is not set up yet: pass it to the Trainer's callbacks")
        return self.sampler.weights(ids, device)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.sampler is not None  # setup() ran
        self.recorder = self.sampler.recorder(trainer.optimizers[0], **self.recorder_options)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not isinstance(outputs, dict) or "per_sample_loss" not in outputs:
            raise ValueError('training_step must return a dict with "loss" and "per_sample_loss"')
        ids, labels = batch[0], batch[-1]
        assert self.recorder is not None  # on_train_start() ran
        self.recorder.observe(
            ids,
            outputs["per_sample_loss"],
            logits=outputs.get("logits"),
            labels=outputs.get("labels", labels),
            correct=outputs.get("correct"),
            embeddings=outputs.get("embeddings"),
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if isinstance(v, int | float) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        }
        assert self.recorder is not None  # on_train_start() ran
        self.recorder.end_round(metrics)

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict() if self.sampler is not None else dict(self._restored or {})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored = dict(state_dict)
        if self.sampler is not None:
            self.sampler.load_state_dict(self._restored)


class CurriculumDataModule(L.LightningDataModule):
    """Training data served through the callback's sampler, one round's slice per epoch.

    Args:
        dataset: the map-style training set (each item is wrapped with its id).
        callback: the :class:`CurriculumCallback` passed to the same ``Trainer``.
        **loader_options: keyword arguments of ``DataLoader`` (``batch_size``, ``num_workers``, ...).

    Raises:
        RuntimeError: the ``Trainer`` asks for data before the callback is set up (the callback is
            not among its callbacks).

    Example::

        data = curriculum.CurriculumDataModule(train_set, callback, batch_size=256, num_workers=4)
        trainer.fit(model, datamodule=data)
    """

    def __init__(self, dataset: Any, callback: CurriculumCallback, **loader_options: Any) -> None:
        super().__init__()
        self.dataset, self.callback, self.loader_options = dataset, callback, loader_options

    def train_dataloader(self) -> DataLoader[tuple[Any, ...]]:
        return self.callback.dataloader(self.dataset, **self.loader_options)
