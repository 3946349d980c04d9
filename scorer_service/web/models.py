"""What the REST API answers, as models: the OpenAPI document states exactly these, and FastAPI checks
every answer against them before it is sent."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, create_model

from scorer_service.core import state
from scorer_service.core.wire import answers
from scorer_service.core.wire import batch as wire

# The bound of every integer parameter that no id range bounds (offsets, rounds, steps, sequence
# numbers): far beyond any real value, an int64 with room for the store's arithmetic on it, and the
# largest integer a JSON number (a double) tells from its neighbours, so a client checking against
# the document agrees with the server on what is in range.
MAX_INT = 2**53 - 1


class Error(BaseModel):
    """Every 4xx and 5xx answer: one line that says what was wrong, and the exception class behind it
    (``NotFound``, ``InvalidQuery``, ``RunExists``, ``Forbidden``, ...) where it has one."""

    detail: str
    type: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    store_reachable: bool
    runs: list[str]
    unreachable: list[str] = []
    error: str | None = None


class _Answer(BaseModel):
    # Routes return the store's typed answers; the models read their fields.
    model_config = ConfigDict(from_attributes=True)


class _ClosedAnswer(_Answer):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


def answer_model(cls: type, base: type[BaseModel] = _Answer, **types: Any) -> type[BaseModel]:
    """The REST model of a store answer (a dataclass of :mod:`scorer_service.core.wire.answers`): its fields,
    types (``types``: those of fields holding answers, as their models), defaults and description."""
    hints = get_type_hints(cls) | types
    specs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        specs[f.name] = (hints[f.name], default)
    return create_model(cls.__name__, __base__=base, __doc__=cls.__doc__, __module__=__name__, **specs)


ShardLoad = answer_model(answers.ShardLoad)
RunSummary = answer_model(answers.RunSummary)
RunInfo = answer_model(answers.RunInfo, shards=list[ShardLoad])  # type: ignore[valid-type]
Sample = answer_model(state.Sample, _ClosedAnswer)
Histogram = answer_model(answers.Histogram)
RoundSummary = answer_model(answers.RoundSummary)
Subset = answer_model(answers.Subset)
LabelIssue = answer_model(answers.LabelIssue)
Ingested = answer_model(wire.Ingested)


# A run name as a path segment can carry it: no "/", no control characters.
RUN_NAME_PATTERN = r"^[^/\x00-\x1f\x7f]+$"


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer, not a boolean")
    return value


# An integer as JSON Schema has it: 320.0 is one, true is not (pydantic's lax mode takes both).
JsonInt = Annotated[int, BeforeValidator(_not_bool)]


class CreateRun(BaseModel):
    """``POST /v1/runs``: what ``curriculum.create_run`` takes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=RUN_NAME_PATTERN)
    n: JsonInt = Field(ge=1, le=MAX_INT, description="training samples")
    # The bounds on the integer itself, before the validator: anywhere else they would not reach the schema.
    num_classes: Annotated[int, Field(ge=0, le=MAX_INT), BeforeValidator(_not_bool)] | None = Field(
        None, description="needed by methods reading logits"
    )
    # Strict: "true" or 1 is not a bool here, as the document says.
    replace: StrictBool = Field(False, description="replace a live run of that name (its snapshots stay)")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="StoreConfig settings by flat name (epochs, method, warm_start, budget_start, seed, ...) "
        'or nested by group ("budget": {"start": 0.5})',
    )


class CreateToken(BaseModel):
    """``POST /v1/tokens``: a role, limited to one run, to a run-name prefix, or (neither) all runs."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["read", "train", "admin"]
    run: str | None = Field(None, min_length=1, max_length=200)
    prefix: str | None = Field(None, min_length=1, max_length=200)
    name: str = Field("", max_length=200, description="who or what holds it")


class TokenInfo(BaseModel):
    id: str
    role: str
    run: str | None
    prefix: str | None
    name: str
    created: float


class NewToken(TokenInfo):
    # The secret: shown in this answer only; the service keeps its hash.
    token: str


class SnapshotTaken(BaseModel):
    run: str
    snapshot: int


class Deleted(BaseModel):
    run: str
    deleted: bool


class RankSlice(BaseModel):
    round: int
    rank: int
    world_size: int
    ids: list[int]


class SampleIds(BaseModel):
    ids: list[JsonInt] = Field(..., max_length=10_000_000, description="sample ids, e.g. a rank's slice")


class LossWeights(BaseModel):
    """The weight of each sample's loss in the trainers' batch mean (1 for selectors without weights)."""

    weights: list[float]


class Rewound(BaseModel):
    rewound: bool


class Recorded(BaseModel):
    round: int
    recorded: bool


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can return: each a one-line :class:`Error`."""
    what = {
        400: "a parameter the store refuses",
        401: "missing or unknown bearer token",
        403: "the token's role or runs do not cover the request",
        404: "unknown run, sample or round",
        409: "a live run of that name, or the store's configuration does not allow it (no snapshot_dir)",
        413: "the body is too large",
        415: "the body is neither an Arrow IPC stream nor JSON",
        422: "a parameter outside its declared type or range",
        425: "the round may not be selected yet: the scores are too far behind (max_staleness)",
        500: "the store failed (details in the server log)",
        503: "the store did not answer in time or is restarting",
    }
    return {code: {"model": Error, "description": what[code]} for code in codes}


# A read of one run: the store's errors, and those of a token that is missing or falls short.
READ_STORE_ERRORS = errors(400, 401, 403, 404, 422, 500, 503)


# ``{"id": 17, "<metric>": 3.2}``: the value is keyed by the metric asked for.
TopEntryJSON = dict[str, int | float]
