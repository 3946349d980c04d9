"""The benchmark harness on tiny settings: result structure, JSON round trip, tables and sane values."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trainers
from trainers.benchmarks import noisy, outcomes, overhead, rest, savings, store_cost
from trainers.benchmarks.__main__ import main, run_suite
from trainers.benchmarks.harness import markdown_table, quiet_progress, write_json

TINY = {
    "overhead": overhead.Settings(
        (overhead.Workload("synthetic:n=256,classes=3,dim=8", "mlp-small", 64),), reps=3
    ),
    "rest": rest.Settings(
        latency_requests=20,
        throughput_requests=40,
        concurrency=4,
        store_n=500,
        parquet_n=5_000,
        parquet_reps=1,
        servers=("project",),
    ),
    "outcomes": outcomes.Settings(
        tuple(v for v in outcomes.VARIANTS if v.label in ("random", "dihcl-exp")),
        (outcomes.Data("tiny", "synthetic:n=200,classes=3,dim=8,noise=0.2"),),
        seeds=(0,),
        epochs=3,
        warm_start=1,
        cycle_length=1,
        cleanlab=False,
    ),
    "noisy": noisy.Settings(
        "synthetic:n=300,classes=3,dim=8,noise=0.4", noisy.RUNS[:1], epochs=3, warm_start=1, cycle_length=1
    ),
    "savings": savings.Settings(
        (savings.Workload("tiny", "synthetic:n=300,classes=3,dim=8", "mlp-small"),),
        tuple(m for m in savings.METHODS if m.label in (savings.PLAIN, savings.FULL, savings.INFOBATCH)),
        seeds=(0,),
        epochs=4,
        warm_start=1,
        cycle_length=1,
    ),
}


@pytest.fixture(scope="module")
def results(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = {}
    for name, settings in TINY.items():
        result = run_suite(name, settings, out, quiet_progress)
        write_json(out / f"{name}.json", result)
        done[name] = json.loads((out / f"{name}.json").read_text())
    return out, done


def test_every_suite_has_a_table_json_and_no_problems(results):
    out, done = results
    for name, r in done.items():
        assert r["problems"] == [], (name, r["problems"])
        assert r["table"].startswith("|") or "\n|" in r["table"], name
        assert r["wall_s"] > 0
        if r.get("plot"):
            assert (out / r["plot"]).stat().st_size > 1000


def test_overhead_values(results):
    (row,) = results[1]["overhead"]["rows"]
    assert len(row["ratios"]) == 3 and all(x > 0 for x in row["ratios"])
    assert row["median_ratio"] > 0 and row["plain_step_us"] > 0
    assert row["samples_sent"] == row["samples_ingested"] == 256 * (3 + overhead.WARMUP_EPOCHS)


def test_rest_values(results):
    r = results[1]["rest"]
    (server,) = r["servers"]
    assert server["errors"] == 0 and server["requests"] == 20
    assert 0 < server["p50_ms"] <= server["p99_ms"] and server["requests_per_s"] > 0
    assert r["export"]["n"] == 5_000 and r["export"]["total_s"] > 0


def test_outcomes_values(results):
    (d,) = results[1]["outcomes"]["datasets"]
    assert [row["variant"] for row in d["rows"]] == ["random", "dihcl-exp"]
    for row in d["rows"]:
        assert 0 <= row["final_acc_mean"] <= 100 and row["sample_passes"] > 0
    for run in d["runs"]:
        passes = [r["passes"] for r in run["rounds"]]
        assert len(passes) == 3 and passes == sorted(passes) and passes[-1] == run["sample_passes"]
    random_row = d["rows"][0]
    assert random_row["reached"] == 1 and random_row["speedup_vs_random"] == pytest.approx(1.0)


def test_noisy_values(results):
    r = results[1]["noisy"]
    assert r["noisy"] > 0 and len(r["runs"]) == 1
    rounds = r["runs"][0]["rounds"]
    assert [x["round"] for x in rounds] == [0, 1, 2]
    for x in rounds:
        for q in x["scores"].values():
            assert 0 <= q["auroc"] <= 1 and 0 <= q["top_noisy_fraction"] <= 1
            assert 0 <= q["noisy_above_all_clean"] <= 1


def test_savings_values(results):
    r = results[1]["savings"]
    (d,) = r["workloads"]
    rows = {row["method"]: row for row in d["rows"]}
    assert list(rows) == [savings.PLAIN, savings.FULL, savings.INFOBATCH]
    # One process and the same sample order: full data through the store is plain training's model.
    assert rows[savings.FULL]["acc"] == rows[savings.PLAIN]["acc"] == d["full_acc"]
    assert rows[savings.FULL]["passes_vs_full"] == rows[savings.PLAIN]["passes_vs_full"] == 1.0
    assert rows[savings.INFOBATCH]["passes_vs_full"] < 1.0
    assert rows[savings.FULL]["wall_vs_full"] == pytest.approx(1.0)
    for run in r["runs"]:
        times = [x["t"] for x in run["rounds"]]
        assert len(times) == 4 and times == sorted(times) and times[-1] == pytest.approx(run["train_s"])
        assert run["startup_s"] > 0


def test_savings_report_rebuilds_the_summary_from_the_saved_runs(results, tmp_path):
    out, done = results
    saved = tmp_path / "savings.json"
    saved.write_text((out / "savings.json").read_text())
    rebuilt = savings.report(saved)
    assert rebuilt["workloads"] == done["savings"]["workloads"]
    assert savings.check(rebuilt) == [] and all(run["epochs"] == 4 for run in rebuilt["runs"])
    assert rebuilt["plot"] == "savings.png" and (tmp_path / "savings.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="no such file: .*absent.json"):
        savings.report(tmp_path / "absent.json")


def test_store_cost_trains_both_sides_in_turns_on_the_same_samples(ray_session):
    tiny = TINY["savings"]
    r = store_cost.run(tiny.workloads[0], tiny)
    (p,) = r["pairs"]
    for role in store_cost.ROLES:
        rounds = p["rounds"][role]
        assert [x["s"] for x in rounds] == pytest.approx(
            [x["end"] - x["start"] - x["eval_s"] for x in rounds]
        )
        assert len(rounds) == 4 and all(x["s"] > 0 for x in rounds)
    plain, full = p["rounds"]["plain"], p["rounds"]["full"]
    # Turns: plain first in even rounds, full first in odd ones, never both at once.
    for i, (a, b) in enumerate(zip(plain, full, strict=True)):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        assert first["end"] < second["start"]
    # The same seed and sample order: full data through the store trains plain training's model.
    assert [x["test_accuracy"] for x in plain] == [x["test_accuracy"] for x in full]
    assert r["ratio"] == pytest.approx(p["full_s"] / p["plain_s"])
    assert p["round_ratios"] == pytest.approx([b["s"] / a["s"] for a, b in zip(plain, full, strict=True)])
    assert "| 0 |" in store_cost.table(r)


def test_ranking_quality_extremes():
    noisy_mask = np.array([True, True, False, False, False])
    perfect = noisy.ranking_quality(np.array([5.0, 4.0, 1.0, 2.0, 0.0]), noisy_mask)
    assert perfect == {"auroc": 1.0, "top_noisy_fraction": 1.0, "noisy_above_all_clean": 1.0}
    reversed_ = noisy.ranking_quality(np.array([0.0, 1.0, 3.0, 4.0, np.nan]), noisy_mask)
    assert reversed_["auroc"] < 0.5 and reversed_["noisy_above_all_clean"] == 0.0


def test_passes_to_reach_and_table():
    rounds = [{"passes": 10, "test_accuracy": 0.5}, {"passes": 20, "test_accuracy": 0.9}]
    assert outcomes.passes_to_reach(rounds, 0.8) == 20
    assert outcomes.passes_to_reach(rounds, 0.95) is None
    assert markdown_table(["a", "b"], [["x", 1.5]]).splitlines() == [
        "| a | b |",
        "|:---|---:|",
        "| x | 1.5 |",
    ]


def test_unknown_suite_is_an_error(tmp_path, capsys):
    assert main(["nope", "--out", str(tmp_path)]) == 2
    assert "unknown suite" in capsys.readouterr().err


def test_curriculum_bench_rejects_an_unknown_suite(tmp_path, capfd):
    from trainers.cli import main as cli

    assert cli(["bench", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown suite" in capfd.readouterr().err


def test_curriculum_bench_runs_from_any_folder_and_writes_its_tables(tmp_path):
    # The suites are part of the installed packages: nothing is read from the folder it runs in.
    packages = Path(trainers.__file__).resolve().parent.parent
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(packages), os.environ.get("PYTHONPATH")])),
        "RAY_AUTH_MODE": "disabled",
    }
    command = [sys.executable, "-m", "trainers.cli", "bench", "overhead", "--quick", "--out", "tables"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tables"]
    out = tmp_path / "tables"
    result = json.loads((out / "overhead.json").read_text())
    assert result["problems"] == [] and result["quick"] is True
    (row,) = result["rows"]
    assert row["samples_sent"] == row["samples_ingested"] > 0
    table = result["table"].splitlines()
    assert table[0].startswith("| workload | device |") and table[2].startswith("| digits mlp b64 | cpu |")
    summary = (out / "summary.md").read_text()
    assert "## Streaming overhead in the training loop" in summary and result["table"] in summary
    assert result["table"] in done.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["suites"] == ["overhead"] and run["problems"] == {}
    assert (out / result["plot"]).stat().st_size > 1000


def test_selection_speedups_compare_each_of_our_runs_with_the_fastest_library_run():
    from trainers.benchmarks.selection_libraries import speedups

    def row(lib, opt, t, obj, eps=None):
        r = {"n": 10, "k": 2, "function": "feature", "library": lib, "optimizer": opt}
        r |= {"time_s": t, "objective": obj} | ({"epsilon": eps} if eps else {})
        return r

    rows = [
        row("ours", "stochastic", 0.01, 99.0, 0.1),
        row("ours", "stochastic", 0.02, 99.8, 0.01),
        row("ours", "lazy", 0.1, 100.0),
        row("apricot", "stochastic", 3.0, 99.0, 0.1),
        row("apricot", "lazy", 2.0, 100.0),
        row("submodlib", "stochastic", 0.5, 98.0, 0.1),
        row("submodlib", "lazy", 0.8, 100.0),
        {"n": 10, "k": 2, "function": "feature", "library": "apricot", "optimizer": "x", "skipped": "no"},
    ]
    got = {u["ours"]: u for u in speedups(rows)}
    assert set(got) == {"stochastic 0.1", "stochastic 0.01", "lazy"}
    assert got["stochastic 0.1"]["fastest_library"] == "submodlib stochastic 0.1"
    assert got["stochastic 0.1"]["speedup"] == pytest.approx(50.0)
    assert got["stochastic 0.01"]["objective_vs_it_pct"] == pytest.approx(100 * (99.8 / 98.0 - 1))
    # exact greedy is only compared with exact greedy
    assert got["lazy"]["fastest_library"] == "submodlib lazy" and got["lazy"]["speedup"] == pytest.approx(8.0)


def test_the_scale_projection_recovers_a_per_part_ingest_cost():
    from trainers.benchmarks.scale import part_cost, projection

    a, b, n, batch = 2e-3, 5e-8, 1_000_000, 65_536
    rows = []
    for shards in (2, 4, 8):
        parts = -(-n // 2 // batch) * 2  # two writers, each a pass over half of the ids
        per_shard = parts * (a + b * batch / shards)
        rows.append(
            {
                "n": n,
                "shards": shards,
                "writers": 2,
                "batch": batch,
                "diversity": False,
                "shard_cpu_s_per_million": [per_shard / (n / shards / 1e6)] * shards,
                "state_bytes": [100 * n // shards] * shards,
                "select": {"dihcl-greedy": {"shard_cpu_s": [0.5] * shards}},
            }
        )
    got_a, got_b = part_cost(rows)
    assert got_a == pytest.approx(a, rel=1e-6) and got_b == pytest.approx(b, rel=1e-6)
    hundred = projection(rows)[0]
    assert hundred["ingest_samples_per_s"]["65536"] == pytest.approx(65_536 / (a + b * 65_536 / 100))
    assert hundred["shard_select_s"]["dihcl-greedy"] == pytest.approx(0.5 / (n / 8 / 1e6) * 50)


def test_the_group_commit_sweep_puts_always_against_never_per_writer_count():
    from trainers.benchmarks import fsync_sweep

    def row(writers, policy, rate, batches, fsyncs):
        ms = {"call_p50_ms": 1.0, "call_p99_ms": 2.0}
        return {
            "writers": writers,
            "fsync": policy,
            "samples_per_s": rate,
            "batches": batches,
            "fsyncs": fsyncs,
        } | ms

    rows = [row(16, "never", 1000.0, 50, 0), row(16, "always", 800.0, 40, 8), row(1, "never", 10.0, 5, 0)]
    rows.append(row(1, "always", 5.0, 4, 4))
    lines = fsync_sweep.table(rows).splitlines()
    assert lines[2].startswith("| 1 | 10 | 5 | 50 % | 4 | 4 | 1.0 |")
    assert lines[3].startswith("| 16 | 1,000 | 800 | 80 % | 40 | 8 | 5.0 |")
