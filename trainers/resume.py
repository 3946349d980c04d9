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

from pyarrow import fs as pafs

from scorer_service.durability.storage import RunStorage, latest_incarnation, open_filesystem, read_json
from trainers.config import TrainConfig
from trainers.run import default_snapshot_dir

# Next to the model state in every checkpoint of the recipe: the sampler's state_dict.
CHECKPOINT_META = "curriculum.json"


def train_name(cfg: TrainConfig) -> str:
    """Ray Train's name for the run: the same for every attempt of one run, and only for it."""
    return f"{cfg.run}-{cfg.incarnation}"


def write_checkpoint_meta(directory: str, sampler_state: dict[str, Any]) -> None:
    with open(os.path.join(directory, CHECKPOINT_META), "w") as f:
        json.dump(sampler_state, f)


def _config_path(cfg: TrainConfig) -> tuple[pafs.FileSystem, str]:
    fs, base = open_filesystem(cfg.snapshot_dir)
    return fs, f"{base.rstrip('/')}/{cfg.run}/{cfg.incarnation}/train_config.json"


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
