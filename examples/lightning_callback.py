"""A LightningModule with the curriculum callback: every epoch is a round the store selected.

python examples/lightning_callback.py --samples 800 --epochs 6 --checkpoints ckpt/ [--devices 2]
python examples/lightning_callback.py ... --resume ckpt/last.ckpt     # continues where it stopped
"""

from __future__ import annotations

import argparse
import os

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from own_ray_train_loop import Images, cnn  # the same data and model as the Ray Train example

import curriculum


class Classifier(L.LightningModule):
    def __init__(self, callback: curriculum.CurriculumCallback, crash_in_round: int | None = None) -> None:
        super().__init__()
        self.net, self.callback, self.crash_in_round = cnn(), callback, crash_in_round

    def training_step(self, batch: tuple, batch_idx: int) -> dict:
        if self.current_epoch == self.crash_in_round and batch_idx == 3:
            raise RuntimeError(f"simulated crash in round {self.crash_in_round}")
        ids, x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, reduction="none")
        self.log("train_loss", loss.mean())
        weighted = (self.callback.weights(ids, loss.device) * loss).mean()  # 1 unless the method reweights
        return {"loss": weighted, "per_sample_loss": loss.detach(), "logits": logits.detach()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="lightning")
    p.add_argument("--samples", type=int, default=800)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--checkpoints", default="lightning-checkpoints")
    p.add_argument("--resume", default=None, help="a checkpoint of this run to continue from")
    p.add_argument("--crash-in-round", type=int, default=None, help="fail mid-round (to try --resume)")
    p.add_argument("--address", default=None, help="Ray cluster (default: RAY_ADDRESS or a local one)")
    args = p.parse_args(argv)
    curriculum.connect(args.address)
    # Lightning starts the other devices' processes by running this script again: only the first
    # process of a fresh run creates it.
    if args.resume is None and os.environ.get("LOCAL_RANK", "0") == "0":
        curriculum.create_run(
            args.run, n=args.samples, num_classes=10, epochs=args.epochs, warm_start=2, cycle_length=2
        )
    callback = curriculum.CurriculumCallback(args.run)
    data = curriculum.CurriculumDataModule(Images(args.samples), callback, batch_size=32)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=args.devices,
        callbacks=[callback, ModelCheckpoint(dirpath=args.checkpoints, save_last=True)],
        reload_dataloaders_every_n_epochs=1,  # each round is a new subset
        use_distributed_sampler=False,  # the store shards the data, not Lightning
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Classifier(callback, args.crash_in_round), datamodule=data, ckpt_path=args.resume)
    if trainer.global_rank == 0:
        info = curriculum.attach_run(args.run).info()
        print(f"run {args.run}: {info.rounds_completed} rounds, {info.ingested} byproducts ingested")


if __name__ == "__main__":
    main()
