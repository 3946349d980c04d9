"""Where a store keeps its state: Parquet snapshots and write-ahead logs, on a path or a filesystem URI.

Layout under ``<root>/<run>/<incarnation>/`` (a local path or any pyarrow filesystem URI):

- ``snap-<N>/columns.parquet``, ``rounds.parquet``, ``steps.parquet``: a full copy of the state;
- ``snap-<N>.json``: its manifest, written last; a snapshot without a manifest does not exist;
- ``wal-<N>.log``: every state change acknowledged after snapshot N was taken, in order;
- ``quarantine/``: log records that could not be applied when the log was replayed.

On a local path (NFS included) every file of a snapshot is fsynced before its manifest is renamed
into place, and the directory after; object stores make a file durable when it is closed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from scorer_service.durability.codec import to_numpy, to_record_batch
from scorer_service.durability.wal import LogWriter, Record, read_records, sync_dir


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or a URI such as ``s3://bucket/prefix``."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def read_json(fs: pafs.FileSystem, path: str) -> Any:
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())


def _number(name: str) -> int:
    """``snap-00000012.json`` -> 12."""
    return int(name.split("-", 1)[1].split(".")[0])


class RunStorage:
    """Snapshots and write-ahead logs of one store incarnation."""

    def __init__(self, root: str, run: str, incarnation: str) -> None:
        self.fs, base = open_filesystem(root)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.dir = f"{base.rstrip('/')}/{run}/{incarnation}"
        self.fs.create_dir(self.dir, recursive=True)
        # Object stores cannot append: snapshots only (see the README's durability section).
        self.supports_wal = self._can_append()

    def _can_append(self) -> bool:
        probe = f"{self.dir}/.append-probe"
        try:
            with self.fs.open_append_stream(probe):
                pass
        except (NotImplementedError, pa.ArrowNotImplementedError):
            return False
        self.fs.delete_file(probe)
        return True

    def _names(self) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(self.dir))

    def highest_number(self) -> int:
        """The largest snapshot or log number present, complete or not (0: none)."""
        return max(
            (_number(i.base_name) for i in self._names() if i.base_name.startswith(("snap-", "wal-"))),
            default=0,
        )

    # ---- snapshots ----------------------------------------------------------------------

    def snapshots(self) -> list[dict[str, Any]]:
        """Manifests of the complete snapshots, oldest first."""
        names = sorted(
            n for n in (i.base_name for i in self._names()) if n.startswith("snap-") and n.endswith(".json")
        )
        out = []
        for name in names:
            try:
                out.append(read_json(self.fs, f"{self.dir}/{name}"))
            except FileNotFoundError:  # dropped by the store while another process lists them
                continue
        return out

    def write_snapshot(
        self,
        seq: int,
        meta: dict[str, Any],
        columns: dict[str, np.ndarray],
        rounds: pa.Table,
        steps: dict[str, np.ndarray],
    ) -> None:
        """Write snapshot ``seq``; only the final manifest write makes it visible."""
        d = f"{self.dir}/snap-{seq:08d}"
        self.fs.create_dir(d, recursive=True)
        tables = {
            "columns": pa.Table.from_batches([to_record_batch(columns)]),
            "rounds": rounds,
            "steps": pa.table(steps),
        }
        for name, table in tables.items():
            with self._durable_output(f"{d}/{name}.parquet") as f:
                pq.write_table(table, f)
        if self.local:
            sync_dir(d)
        tmp, final = f"{self.dir}/.snap-{seq:08d}.json.tmp", f"{self.dir}/snap-{seq:08d}.json"
        with self._durable_output(tmp) as f:
            f.write(json.dumps({**meta, "seq": seq}).encode())
        self.fs.move(tmp, final)
        if self.local:
            sync_dir(self.dir)

    @contextmanager
    def _durable_output(self, path: str) -> Iterator[Any]:
        """A file that is on disk when the block ends (fsynced locally; object stores on close)."""
        if not self.local:
            with self.fs.open_output_stream(path) as f:
                yield f
            return
        with open(path, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())

    def read_snapshot(self, seq: int) -> tuple[dict[str, np.ndarray], pa.Table, dict[str, np.ndarray]]:
        d = f"{self.dir}/snap-{seq:08d}"
        columns = to_numpy(pq.read_table(f"{d}/columns.parquet", filesystem=self.fs))
        rounds = pq.read_table(f"{d}/rounds.parquet", filesystem=self.fs)
        steps = to_numpy(pq.read_table(f"{d}/steps.parquet", filesystem=self.fs))
        return columns, rounds, steps

    def drop(self, below: int, keep: set[int]) -> None:
        """Delete snapshots numbered below ``below`` that are not in ``keep``, and every log below it
        (a complete snapshot ``below`` makes the logs before it unnecessary)."""
        for info in self._names():
            name = info.base_name
            if not name.startswith(("snap-", "wal-")):
                continue
            seq = _number(name)
            if seq >= below or (name.startswith("snap-") and seq in keep):
                continue
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(info.path)
            else:
                self.fs.delete_file(info.path)

    # ---- write-ahead logs ---------------------------------------------------------------

    def log_numbers(self, first: int) -> list[int]:
        """Numbers of the logs from ``first`` on, in order (replay reads them one after another)."""
        return sorted(
            n
            for n in (_number(i.base_name) for i in self._names() if i.base_name.startswith("wal-"))
            if n >= first
        )

    def open_log(self, seq: int) -> LogWriter | None:
        """A fresh, empty log after snapshot ``seq`` (None where the filesystem cannot append)."""
        return LogWriter(self.fs, f"{self.dir}/wal-{seq:08d}.log") if self.supports_wal else None

    def read_log(self, seq: int) -> Iterator[Record]:
        """The complete records of log ``seq``, one at a time (see :func:`.wal.read_records`)."""
        with self.fs.open_input_stream(f"{self.dir}/wal-{seq:08d}.log") as f:
            yield from read_records(f)

    def log_size(self, seq: int) -> int:
        return self.fs.get_file_info(f"{self.dir}/wal-{seq:08d}.log").size

    def quarantine(self, seq: int, record: Record) -> str:
        """Keep a record that could not be applied out of the way, for inspection; returns its path."""
        d = f"{self.dir}/quarantine"
        self.fs.create_dir(d, recursive=True)
        path = f"{d}/wal-{seq:08d}-{record.end:012d}.rec"
        with self._durable_output(path) as f:
            f.write(record.raw)
        return path


def latest_incarnation(root: str, run: str) -> str | None:
    """The incarnation of ``run`` with the newest snapshot, for resuming a run by name."""
    fs, base = open_filesystem(root)
    run_dir = f"{base.rstrip('/')}/{run}"
    if fs.get_file_info(run_dir).type == pafs.FileType.NotFound:
        return None
    best, best_time = None, -1.0
    for info in fs.get_file_info(pafs.FileSelector(run_dir)):
        if info.type != pafs.FileType.Directory:
            continue
        for snap in fs.get_file_info(pafs.FileSelector(info.path)):
            if snap.base_name.startswith("snap-") and snap.base_name.endswith(".json"):
                created = read_json(fs, snap.path).get("created", 0.0)
                if created > best_time:
                    best, best_time = info.base_name, created
    return best
