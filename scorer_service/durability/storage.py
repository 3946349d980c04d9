"""Durable store state: Parquet snapshots plus an append-only write-ahead log.

Layout under ``<root>/<run>/<incarnation>/`` (a local path or any pyarrow filesystem URI):

- ``snap-<N>/columns.parquet``, ``rounds.parquet``, ``steps.parquet``: a full copy of the state;
- ``snap-<N>.json``: its manifest, written last; a snapshot without a manifest does not exist;
- ``wal-<N>.log``: every state change acknowledged after snapshot N, in order.

Each WAL record is ``[magic, header length, payload length][JSON header][Arrow IPC payload]``; a
record cut short by a crash is ignored (its call was never acknowledged, so the sender retries).
Nothing is unpickled: headers are JSON, payloads Arrow.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from scorer_service.durability.codec import to_numpy, to_record_batch

_MAGIC = b"CWAL"
_FRAME = struct.Struct("<4sIQ")


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path)`` for a local path or a URI such as ``s3://bucket/prefix``."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


class RunStorage:
    """Snapshots and write-ahead log of one store incarnation."""

    def __init__(self, root: str, run: str, incarnation: str) -> None:
        self.fs, base = open_filesystem(root)
        self.dir = f"{base.rstrip('/')}/{run}/{incarnation}"
        self.fs.create_dir(self.dir, recursive=True)
        self._wal: Any = None
        self._wal_seq: int | None = None
        try:
            with self.fs.open_append_stream(f"{self.dir}/.append-probe"):
                pass
            self.fs.delete_file(f"{self.dir}/.append-probe")
            self.supports_wal = True
        except (NotImplementedError, pa.ArrowNotImplementedError):
            # Object stores have no append: snapshots only (see the README's durability section).
            self.supports_wal = False

    # ---- snapshots ----------------------------------------------------------------------

    def snapshots(self) -> list[dict[str, Any]]:
        """Manifests of the complete snapshots, oldest first."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.dir))
        names = sorted(
            i.base_name for i in infos if i.base_name.startswith("snap-") and i.base_name.endswith(".json")
        )
        out = []
        for name in names:
            with self.fs.open_input_stream(f"{self.dir}/{name}") as f:
                out.append(json.loads(f.read()))
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
        pq.write_table(
            pa.Table.from_batches([to_record_batch(columns)]), f"{d}/columns.parquet", filesystem=self.fs
        )
        pq.write_table(rounds, f"{d}/rounds.parquet", filesystem=self.fs)
        pq.write_table(pa.table(steps), f"{d}/steps.parquet", filesystem=self.fs)
        tmp, final = f"{self.dir}/.snap-{seq:08d}.json.tmp", f"{self.dir}/snap-{seq:08d}.json"
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps({**meta, "seq": seq}).encode())
        self.fs.move(tmp, final)

    def read_snapshot(self, seq: int) -> tuple[dict[str, np.ndarray], pa.Table, dict[str, np.ndarray]]:
        d = f"{self.dir}/snap-{seq:08d}"
        columns = to_numpy(pq.read_table(f"{d}/columns.parquet", filesystem=self.fs))
        rounds = pq.read_table(f"{d}/rounds.parquet", filesystem=self.fs)
        steps = to_numpy(pq.read_table(f"{d}/steps.parquet", filesystem=self.fs))
        return columns, rounds, steps

    def drop(self, keep: set[int]) -> None:
        """Delete snapshots and logs whose sequence number is not in ``keep``."""
        for info in self.fs.get_file_info(pafs.FileSelector(self.dir)):
            name = info.base_name
            if not (name.startswith("snap-") or name.startswith("wal-")):
                continue
            seq = int(name.split("-")[1].split(".")[0])
            if seq in keep:
                continue
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(info.path)
            else:
                self.fs.delete_file(info.path)

    # ---- write-ahead log ----------------------------------------------------------------

    def start_log(self, seq: int, fresh: bool = False) -> None:
        """Append further records to the log that follows snapshot ``seq`` (``fresh``: a new, empty log)."""
        if self._wal is not None:
            self._wal.close()
        self._wal, self._wal_seq = None, seq
        if self.supports_wal:
            path = f"{self.dir}/wal-{seq:08d}.log"
            self._wal = self.fs.open_output_stream(path) if fresh else self.fs.open_append_stream(path)

    def append(self, header: dict[str, Any], columns: dict[str, np.ndarray] | None = None) -> None:
        """Durably (to the OS) append one event; returns only after the bytes are written."""
        if self._wal is None:
            return
        head = json.dumps(header).encode()
        payload = b""
        if columns is not None:
            sink = io.BytesIO()
            rb = to_record_batch(columns)
            with pa.ipc.new_stream(sink, rb.schema) as w:
                w.write_batch(rb)
            payload = sink.getvalue()
        self._wal.write(_FRAME.pack(_MAGIC, len(head), len(payload)) + head + payload)
        self._wal.flush()

    def read_log(self, seq: int) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray] | None]]:
        """The complete records of the log after snapshot ``seq`` (none if it does not exist)."""
        path = f"{self.dir}/wal-{seq:08d}.log"
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return
        with self.fs.open_input_stream(path) as f:
            data = f.read()
        pos = 0
        while pos + _FRAME.size <= len(data):
            magic, hlen, plen = _FRAME.unpack_from(data, pos)
            end = pos + _FRAME.size + hlen + plen
            if magic != _MAGIC or end > len(data):
                break  # a record cut short by a crash: never acknowledged
            header = json.loads(data[pos + _FRAME.size : pos + _FRAME.size + hlen])
            payload = data[pos + _FRAME.size + hlen : end]
            columns = None
            if plen:
                columns = to_numpy(pa.ipc.open_stream(payload).read_all())
            yield header, columns
            pos = end

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
            self._wal = None


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
                with fs.open_input_stream(snap.path) as f:
                    created = json.loads(f.read()).get("created", 0.0)
                if created > best_time:
                    best, best_time = info.base_name, created
    return best
