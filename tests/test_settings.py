"""The store's settings in groups: one declaration gives the flags, the flat names and the checks; flat
settings written before the groups (snapshots, config files, REST bodies) still load."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import yaml

from scorer_service.config import (
    BudgetSettings,
    Byproducts,
    Denoise,
    DiversitySettings,
    Durability,
    Schedule,
    Sharding,
    StoreConfig,
    run_config,
)
from trainers.cli import train_config
from trainers.cli.flags import add_config_flags
from trainers.train_config import TrainConfig

# The flat settings of a configuration as snapshots and info().config held them before the groups.
FLAT_KEYS = {
    "n", "epochs", "run", "dataset", "method", "metric", "gamma", "warm_start", "cycle_length",
    "budget_start", "budget_factor", "budget_floor", "budget_cap", "anneal", "unbiased",
    "full_pass_each_cycle", "diversity", "diversity_keep", "diversity_lambda", "diversity_decay",
    "diversity_optimizer", "diversity_epsilon", "diversity_report_size", "denoise", "noise_threshold",
    "seed", "num_classes", "correct", "sketch_dim", "selector_params", "output_width", "embedding_dim",
    "log_sigma_init", "snapshot_dir", "incarnation", "snapshot_every_s", "keep_snapshots", "fsync",
    "store_shards", "max_staleness",
}  # fmt: skip
FLAGS = {
    "--epochs", "--run", "--dataset", "--method", "--metric", "--gamma", "--warm-start", "--cycle",
    "--budget-start", "--budget-factor", "--budget-floor", "--budget-cap", "--anneal", "--unbiased",
    "--full-pass", "--diversity", "--diversity-keep", "--diversity-lambda", "--diversity-decay",
    "--diversity-optimizer", "--diversity-epsilon", "--diversity-report-size", "--denoise",
    "--noise-threshold", "--seed", "--correct", "--sketch-dim", "--selector-params", "--snapshot-dir",
    "--snapshot-every-s", "--keep-snapshots", "--fsync", "--store-shards", "--max-staleness",
}  # fmt: skip


def parse(*argv: str) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    return train_config(parser.parse_args(argv))


def test_the_flat_names_and_flags_are_those_of_the_flat_settings():
    cfg = run_config("r", 50, method="docl", num_classes=10, snapshot_dir=None)
    assert set(cfg.to_dict()) == FLAT_KEYS
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    assert set(parser._option_string_actions) >= FLAGS


def test_flags_land_in_their_groups():
    cfg = parse(
        *("--budget-start", "0.5", "--diversity", "fl", "--diversity-lambda", "2", "--denoise"),
        *("--noise-threshold", "0.3", "--cycle", "3", "--full-pass", "--store-shards", "2"),
        *("--fsync", "round", "--no-correct", "--method", "random", "--epochs", "12"),
    )
    s = cfg.store
    assert (s.epochs, s.method, s.budget.start, s.budget.factor) == (12, "random", 0.5, None)
    assert s.diversity == DiversitySettings(function="fl", lam=2.0)
    assert s.denoise == Denoise(enabled=True, threshold=0.3)
    assert s.schedule == Schedule(cycle_length=3, full_pass_each_cycle=True)
    assert (s.sharding.store_shards, s.durability.fsync, s.byproducts.correct) == (2, "round", False)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_files_flat_nested_or_saved_load_alike_and_flags_override_them(tmp_path, suffix):
    flat = {
        "run": "r",
        "epochs": 8,
        "budget_start": 0.4,
        "diversity": "fl",
        "diversity_keep": 0.3,
        "warm_start": 2,
    }
    nested = {"run": "r", "epochs": 8, "budget": {"start": 0.4}, "diversity": {"function": "fl", "keep": 0.3}}
    nested["schedule"] = {"warm_start": 2}
    saved = TrainConfig.create(**flat).to_dict()
    loaded = []
    for i, data in enumerate((flat, nested, saved)):
        path = tmp_path / f"run{i}{suffix}"
        path.write_text(yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data))
        loaded.append(parse("--config", str(path), "--budget-factor", "0.9").store)
    assert loaded[0] == loaded[1] == loaded[2]
    assert loaded[0].budget == BudgetSettings(start=0.4, factor=0.9)
    assert (loaded[0].diversity.keep, loaded[0].schedule.warm_start) == (0.3, 2)


def test_flat_nested_and_mixed_settings_give_one_configuration():
    cfg = run_config(
        "r", 100, num_classes=10, method="docl", budget_start=0.3, denoise=True, snapshot_dir=None
    )
    flat = cfg.to_dict()
    assert StoreConfig.from_dict(flat) == StoreConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    mixed = dict(flat, budget={"start": 0.6}, budget_start=0.3)
    assert StoreConfig.from_dict(mixed).budget.start == 0.3  # the flat name wins over the same setting nested
    assert cfg.with_settings(budget={"factor": 1.1}).budget == BudgetSettings(start=0.3, factor=1.1)
    assert cfg.with_settings(store_shards=4).sharding.store_shards == 4
    params = cfg.with_settings(selector_params={"a": 1}).with_settings(selector_params={"b": 2})
    assert params.selector_params == {"b": 2}  # a dict setting is replaced, not merged
    saved = {"store": {"budget": {"start": 0.4, "factor": 0.8}}}
    both = TrainConfig.from_dict(saved | {"budget": {"factor": 0.9}})
    assert both.store.budget == BudgetSettings(start=0.4, factor=0.9)
    same = run_config(
        "r", 100, num_classes=10, method="docl", budget={"start": 0.3}, denoise={"enabled": True}
    )
    assert dataclasses.replace(same, durability=cfg.durability) == cfg


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BudgetSettings(start=1.5), r"budget_start must be in \(0, 1\], got 1.5"),
        (lambda: BudgetSettings(factor=0.0), "budget_factor must be > 0"),
        (lambda: BudgetSettings(floor=0.5, cap=0.4), "budget_floor must be <= budget_cap"),
        (lambda: Schedule(cycle_length=0), "cycle_length must be >= 1"),
        (lambda: Schedule(anneal=1.0), r"anneal must be in \[0, 1\)"),
        (lambda: DiversitySettings(function="nope"), "unknown diversity 'nope'"),
        (lambda: DiversitySettings(epsilon=1.0), r"diversity_epsilon must be in \(0, 1\)"),
        (lambda: Denoise(threshold=1.0), r"noise_threshold must be in \(0, 1\)"),
        (lambda: Byproducts(sketch_dim=-1), "sketch_dim must be >= 0"),
        (lambda: Durability(fsync="sometimes"), "unknown fsync 'sometimes'"),
        (lambda: Sharding(max_staleness=-2), "max_staleness must be >= -1"),
        (lambda: StoreConfig.create(n=3, store_shards=4), r"store_shards must be in \[0, n\], got 4"),
        (
            lambda: StoreConfig.create(method="docl", budget_floor=0.95),
            "need 0 < floor <= cap <= 1",
        ),  # cap 0.9
    ],
)
def test_each_group_refuses_its_bad_values_by_the_settings_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_run_creation_names_unknown_settings_flat_or_nested():
    with pytest.raises(ValueError, match=r"unknown run settings: budget.begin, shoe_size"):
        run_config("r", 10, shoe_size=4, budget={"begin": 0.5})
    with pytest.raises(ValueError, match="unknown run settings: incarnation"):
        run_config("r", 10, durability={"incarnation": "x"})
    with pytest.raises(ValueError, match="setting budget_start must be float or NoneType, got '0.5'"):
        run_config("r", 10, budget={"start": "0.5"})
