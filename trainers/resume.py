"""Where a run keeps its state between attempts, and where ``curriculum train --resume`` picks it up.

Everything is found through pyarrow filesystems, so a snapshot directory or checkpoint storage given
as a URI (``s3://bucket/prefix``) works as a local path does. Ray Train stores a run's checkpoints
under a name fixed by the run and its incarnation, so a resumed run has the same name and Ray Train
restores its own latest checkpoint; each checkpoint carries a small JSON with the sampler's position,
read without loading the model.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ray.train
from pyarrow import fs as pafs

from scorer_service.config import default_snapshot_dir
from scorer_service.durability.storage import RunStorage, latest_incarnation, open_filesystem, read_json
from trainers.train_config import TrainConfig

# Next to the model state in every checkpoint of the recipe: the sampler's state_dict.
CHECKPOINT_META = "curriculum.json"


def train_name(cfg: TrainConfig) -> str:
    """Ray Train's name for the run: the same for every attempt of one run, and only for it."""
    return f"{cfg.run}-{cfg.durability.incarnation}"


def write_checkpoint_meta(directory: str, sampler_state: dict[str, Any]) -> None:
    with open(os.path.join(directory, CHECKPOINT_META), "w") as f:
        json.dump(sampler_state, f)


def checkpoint_round(checkpoint: ray.train.Checkpoint) -> int:
    """The round a checkpoint of the recipe ends (-1: it carries no round)."""
    try:
        return int(read_json(checkpoint.filesystem, f"{checkpoint.path}/{CHECKPOINT_META}")["round"])
    except FileNotFoundError:
        return -1


def starting_checkpoint(cfg: TrainConfig) -> ray.train.Checkpoint | None:
    """What a training attempt starts from: Ray Train's checkpoint (a restart within this run, or the
    latest it restored from storage) or the one ``--resume`` chose, whichever ends the later round
    (Ray Train's record of its latest checkpoint can lag behind the checkpoints it uploaded)."""
    candidates = [ray.train.get_checkpoint()]
    if cfg.resume_checkpoint:
        candidates.append(ray.train.Checkpoint(cfg.resume_checkpoint))
    return max((c for c in candidates if c is not None), key=checkpoint_round, default=None)


def _config_path(cfg: TrainConfig) -> tuple[pafs.FileSystem, str]:
    fs, base = open_filesystem(cfg.durability.snapshot_dir)
    return fs, f"{base.rstrip('/')}/{cfg.run}/{cfg.durability.incarnation}/train_config.json"


def save_config(cfg: TrainConfig) -> None:
    """Keep the run's configuration with its snapshots, for ``--resume``."""
    fs, path = _config_path(cfg)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(cfg.to_dict(), indent=2).encode())


def checkpoint_rounds(storage_path: str, name: str) -> dict[int, str]:
    """The run's checkpoints under Ray Train storage ``storage_path`` (path or URI) by the round each
    ends, as paths Ray Train reads (URIs on object stores). ``name`` is matched exactly."""
    fs, base = open_filesystem(storage_path)
    run_dir = f"{base.rstrip('/')}/{name}"
    if fs.get_file_info(run_dir).type == pafs.FileType.NotFound:
        return {}
    scheme = storage_path.split("://", 1)[0] + "://" if "://" in storage_path else ""
    found = {}
    for info in fs.get_file_info(pafs.FileSelector(run_dir)):
        if info.type != pafs.FileType.Directory or not info.base_name.startswith("checkpoint_"):
            continue
        try:
            meta = read_json(fs, f"{info.path}/{CHECKPOINT_META}")
        except FileNotFoundError:  # being written, or not one of the recipe's
            continue
        found[int(meta["round"])] = scheme + info.path
    return found


def drop_unkept_checkpoints(storage_path: str, run_dir: str, kept: list[ray.train.Checkpoint]) -> list[str]:
    """Delete the checkpoints under ``run_dir`` (Ray Train's name of the run) that Ray Train does not
    keep (``kept``: its final result's ``best_checkpoints``): those of an attempt stopped between
    uploading a checkpoint and recording it, which Ray Train never deletes itself. Returns their names."""
    fs, base = open_filesystem(storage_path)
    keep = {c.path.rstrip("/").rsplit("/", 1)[-1] for c in kept}
    dropped = []
    for info in fs.get_file_info(pafs.FileSelector(f"{base.rstrip('/')}/{run_dir}", allow_not_found=True)):
        name = info.base_name
        if info.type == pafs.FileType.Directory and name.startswith("checkpoint_") and name not in keep:
            fs.delete_dir(info.path)
            dropped.append(name)
    return dropped


def find_resume_point(run: str, snapshot_dir: str | None = None) -> tuple[TrainConfig, int]:
    """The configuration (with the model checkpoint to start from) and the round to resume ``run`` after.

    That is the round of the run's newest model checkpoint (the one Ray Train itself restores), and
    the store must keep a snapshot of the end of that same round to return to; when it does not, the
    run cannot continue consistently and this raises.
    """
    root = snapshot_dir or default_snapshot_dir()
    incarnation = latest_incarnation(root, run)
    if incarnation is None:
        raise ValueError(f"no snapshots of run {run!r} under {root}")
    fs, path = _config_path(TrainConfig.create(run=run, snapshot_dir=root, incarnation=incarnation))
    cfg = TrainConfig.from_dict(read_json(fs, path))
    ends = {int(r) for m in RunStorage(root, run, incarnation).snapshots() for r in m["round_end"]} - {-1}
    if not ends:
        raise ValueError(f"run {run!r} has not finished a round yet; start it again instead")
    assert cfg.storage_path is not None  # the run's configuration was saved after prepare() filled it in
    found = checkpoint_rounds(cfg.storage_path, train_name(cfg))
    if not found:
        raise ValueError(f"no model checkpoint of run {run!r} under {cfg.storage_path}; refusing to resume")
    newest = max(found)
    if newest not in ends:
        raise ValueError(
            f"the newest model checkpoint of run {run!r} under {cfg.storage_path} is of round {newest}, but "
            f"the store keeps the ends of rounds {sorted(ends)}; refusing to resume"
        )
    return cfg.replace(resume_checkpoint=found[newest]), newest
