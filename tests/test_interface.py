"""The store's methods are declared once (StoreInterface) and every transport carries them as declared:
the store, the trainers' Ray endpoint, the REST endpoint (the trainers' part); the Ray shells route
the methods marked read-only to the "query" group; the client may import no Ray shell but its errors."""

from __future__ import annotations

import configparser
import inspect
import pkgutil
from pathlib import Path

import scorer_service.ray
from curriculum._internal.ray_endpoint import ActorEndpoint
from curriculum.http_endpoint import HttpEndpoint
from scorer_service.core import errors
from scorer_service.core.wire.interface import StoreInterface, TrainerInterface, is_read_only
from scorer_service.ray.actor import HardnessStoreActor, actor_class, read_only_methods
from scorer_service.store import HardnessStore

ROOT = Path(__file__).parents[1]


def methods(protocol: type) -> set[str]:
    return {
        name
        for cls in protocol.__mro__
        if cls in (StoreInterface, TrainerInterface)
        for name in vars(cls)
        if not name.startswith("_")
    }


def parameters(fn) -> list[tuple[str, object, object, object]]:
    # Making an actor class of the store adds Ray's tracing context to its methods' signatures.
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "_ray_trace_ctx"
    ]


def test_every_transport_has_the_declared_methods_with_the_declared_parameters():
    assert methods(TrainerInterface) < methods(StoreInterface)
    for cls, protocol in (
        (HardnessStore, StoreInterface),
        (ActorEndpoint, StoreInterface),
        (HttpEndpoint, TrainerInterface),
    ):
        for name in methods(protocol):
            declared = getattr(protocol, name)
            assert parameters(getattr(cls, name)) == parameters(declared), (cls.__name__, name)
            assert (
                inspect.signature(getattr(cls, name)).return_annotation
                == inspect.signature(declared).return_annotation
            ), (cls.__name__, name)


def test_the_store_marks_its_queries_read_only_and_an_override_keeps_the_mark():
    queries = {"info", "samples", "top", "histogram", "round_summaries", "round_subset", "column"}
    queries |= {"columns", "label_issues", "parameters", "loss_weights", "layout", "part_columns"}
    assert read_only_methods(HardnessStore) == queries
    changes = methods(StoreInterface) - queries
    assert changes == {"ingest", "prepare", "subset", "record_round", "snapshot", "rewind"}
    assert not any(is_read_only(getattr(HardnessStore, name)) for name in changes)

    class Instrumented(HardnessStore):
        def top(self, *args, **kwargs):
            return super().top(*args, **kwargs)

    assert read_only_methods(Instrumented) == queries
    # The groups Ray runs each method in, as it recorded them when it made the actor classes.
    groups = {name: "query" for name in queries} | {"ingest": "ingest"}
    for actor in (HardnessStoreActor, actor_class(Instrumented)):
        assert actor.__ray_metadata__.method_meta.concurrency_group_for_methods == groups


def test_every_error_derives_from_one_base_and_keeps_its_builtin():
    for name, cls in errors.ERROR_TYPES.items():
        assert cls is ValueError or issubclass(cls, errors.CurriculumError), name
    assert issubclass(errors.InvalidBatch, ValueError) and issubclass(errors.NotFound, KeyError)
    assert issubclass(errors.Forbidden, PermissionError) and issubclass(errors.StoreUnavailable, RuntimeError)


def test_the_client_may_import_no_ray_shell_but_its_errors():
    contract = configparser.ConfigParser()
    contract.read(ROOT / ".importlinter")
    forbidden = set(contract["importlinter:contract:client"]["forbidden_modules"].split())
    shells = {f"scorer_service.ray.{m.name}" for m in pkgutil.iter_modules(scorer_service.ray.__path__)}
    assert shells - forbidden == {"scorer_service.ray.errors"}
