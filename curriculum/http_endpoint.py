"""A run's store through the REST API, for trainers that cannot join the Ray cluster (no Ray import).

Byproduct batches travel as Arrow IPC streams; a send whose response is lost is retried with the
same ``(writer, seq)``, which the store counts once. Errors come back as the store's own exception
types with its message.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast
from urllib.parse import quote

import httpx
import numpy as np

from scorer_service.core.errors import (
    ERROR_TYPES,
    Forbidden,
    InvalidQuery,
    NotFound,
    NotReady,
    Unauthorized,
)
from scorer_service.core.wire.answers import RunInfo
from scorer_service.core.wire.arrow import to_ipc
from scorer_service.core.wire.batch import BATCH_FIELDS, Ingested

ARROW_STREAM = "application/vnd.apache.arrow.stream"


class HttpEndpoint:
    """The store of run ``run`` behind the REST API at ``api``, for trainers outside Ray.

    Pass it to :class:`~curriculum.sampler.RoundSampler` in place of a run name: the sampler and its
    recorder then talk HTTP and never import Ray. Its methods are the trainers' calls of
    :class:`~scorer_service.core.wire.interface.TrainerInterface`, one route each (``parameters`` has none).

    Args:
        api: the API's base URL, e.g. ``http://10.0.0.5:8000`` (:func:`curriculum.serve`'s answer).
        run: the run's name.
        token: the API's bearer token (``curriculum token create``), or None where it needs none.
        timeout: seconds per request.
        retries: how often a call is repeated after a transport error (connection refused or
            reset, timeout).

    Raises:
        NotFound: an unknown run or round, as the store raises it through Ray (each refusal arrives
            as the class it names); likewise ``InvalidBatch``, ``InvalidQuery``, ``NotReady``,
            ``Unauthorized`` and ``Forbidden``.
        StoreUnavailable: a store that cannot answer now (a ``RuntimeError``).
        RuntimeError: another 5xx answer.

    Example::

        endpoint = curriculum.HttpEndpoint("http://10.0.0.5:8000", "cifar-dihcl", token=token)
        sampler = curriculum.RoundSampler(endpoint, rank=rank, world_size=world)
    """

    def __init__(
        self, api: str, run: str, *, token: str | None = None, timeout: float = 60.0, retries: int = 5
    ) -> None:
        self.run, self.retries = run, retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=api.rstrip("/"), headers=headers, timeout=timeout)
        self._path = f"/v1/runs/{quote(run, safe='')}"
        # One thread sends byproducts, in order: the store logs each optimizer step's learning rate
        # once and needs steps to arrive without gaps (a Ray actor keeps a caller's call order too).
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curriculum-http")

    def ingest(self, data: dict[str, Any]) -> Ingested:
        columns = {k: v for k, v in data.items() if k not in BATCH_FIELDS}
        params = {k: data[k] for k in BATCH_FIELDS if k in data}
        body = to_ipc(columns)
        ack = self._request(
            "POST", f"{self._path}/byproducts", params=params, content=body, ctype=ARROW_STREAM
        )
        return Ingested(**ack)

    def send_ingest(self, data: dict[str, Any]) -> Future[Ingested]:
        return self._sender.submit(self.ingest, data)

    def ingest_result(self, pending: Future[Ingested]) -> Ingested:
        return pending.result()

    def subset(self, round_: int, rank: int, world_size: int, step: int | None = None) -> np.ndarray:
        params = {"rank": rank, "world_size": world_size} | ({"step": step} if step is not None else {})
        part = self._request("GET", f"{self._path}/rounds/{round_}/slice", params=params)
        return np.asarray(part["ids"], np.int64)

    def record_round(self, round_: int, metrics: dict[str, float]) -> None:
        self._request("POST", f"{self._path}/rounds/{round_}/metrics", json=dict(metrics))

    def rewind(self, completed_round: int) -> bool:
        answer = self._request("POST", f"{self._path}/rewind", params={"completed_round": completed_round})
        return cast(bool, answer["rewound"])

    def info(self) -> RunInfo:
        return RunInfo.from_json(self._request("GET", self._path))

    def parameters(self, ids: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        raise ValueError("'parameters' is not available over HTTP")

    def loss_weights(self, ids: np.ndarray | list[int]) -> np.ndarray:
        body = {"ids": np.asarray(ids, dtype=np.int64).tolist()}
        return np.asarray(
            self._request("POST", f"{self._path}/loss-weights", json=body)["weights"], np.float32
        )

    def _request(self, verb: str, path: str, *, ctype: str | None = None, **kwargs: Any) -> Any:
        headers = {"Content-Type": ctype} if ctype else None
        for attempt in range(self.retries + 1):
            try:
                r = self.client.request(verb, path, headers=headers, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            if r.status_code < 400:
                return r.json()
            if r.status_code < 500:
                raise api_error(r)
            detail = _detail(r)
            if attempt == self.retries:
                raise server_error(r)(f"{verb} {path}: {r.status_code} {detail}")
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        self.client.close()


def api_error(r: httpx.Response) -> Exception:
    """The exception a 4xx answer stands for: the class its body names (the one a caller through Ray
    gets), else by status: 401, 403, 404, 425, and InvalidQuery for any other."""
    by_status = {401: Unauthorized, 403: Forbidden, 404: NotFound, 425: NotReady}
    return (_named(r) or by_status.get(r.status_code, InvalidQuery))(_detail(r))


def server_error(r: httpx.Response) -> type[Exception]:
    """The class of a 5xx answer's error: the one its body names (``StoreUnavailable`` for a store
    that cannot answer now), else ``RuntimeError``."""
    named = _named(r)
    return named if named is not None and issubclass(named, RuntimeError) else RuntimeError


def _named(r: httpx.Response) -> type[Exception] | None:
    try:
        return ERROR_TYPES.get(r.json().get("type") or "")
    except (ValueError, AttributeError):
        return None


def _detail(r: httpx.Response) -> str:
    try:
        detail = r.json().get("detail", r.text)
    except ValueError:
        return r.text.strip() or r.reason_phrase
    return detail if isinstance(detail, str) else str(detail)
