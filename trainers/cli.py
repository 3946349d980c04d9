"""The ``curriculum`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

from scorer_service.hardness import HARDNESS_METRICS
from scorer_service.selectors import SELECTORS
from scorer_service.submodular import FUNCTIONS, OPTIMIZERS
from trainers.config import TrainConfig
from trainers.queries import add_query_parsers, cmd_export, cmd_scores
from trainers.report import add_report_parser, cmd_report


def _workers(text: str) -> tuple[int, int | None]:
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else (int(lo), None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text!r}") from None


def _train_parser(sub: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = sub.add_parser(
        "train", help="train with a central hardness store (starts local Ray unless RAY_ADDRESS)"
    )
    p.add_argument("--method", default=d.method, choices=sorted(SELECTORS), help="subset selector")
    p.add_argument(
        "--metric", default=d.metric, choices=HARDNESS_METRICS, help="instantaneous hardness for DIH"
    )
    p.add_argument(
        "--dataset", default=d.dataset, help="digits | synthetic[:n=..,classes=..,noise=..] | path"
    )
    p.add_argument("--model", default=d.model)
    p.add_argument("--epochs", type=int, default=d.epochs, help="rounds (one epoch over the subset each)")
    p.add_argument(
        "--workers",
        type=_workers,
        default=(d.workers, None),
        metavar="N|MIN-MAX",
        help="Ray Train workers (0 = local mode; MIN-MAX = elastic)",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per-rank batch size")
    p.add_argument("--lr", type=float, default=d.lr_max, help="peak learning rate of the first cycle")
    p.add_argument("--warm-start", type=int, default=d.warm_start, help="rounds on all data before selection")
    p.add_argument("--cycle", type=int, default=d.cycle_length, help="rounds per cosine cycle")
    p.add_argument("--gamma", type=float, default=d.gamma, help="DIH weight of the newest observation")
    p.add_argument(
        "--budget",
        type=float,
        nargs=4,
        metavar=("START", "FACTOR", "FLOOR", "CAP"),
        default=None,
        help="selected fraction in the first selection cycle, per-cycle factor, floor, cap "
        "(default: the method's own: DIHCL 0.85 0.85 0.2 1, DoCL 0.2 1.1 0.2 0.9, ...)",
    )
    p.add_argument(
        "--data-params",
        choices=("class", "instance", "joint"),
        default=None,
        help="Data Parameters: learned class / instance / joint temperatures",
    )
    p.add_argument("--lerac", action="store_true", help="LeRaC per-layer learning-rate curriculum")
    p.add_argument(
        "--diversity",
        choices=("none", *sorted(FUNCTIONS)),
        default=d.diversity,
        help="keep a share of each selection by hardness + diversity (DIHCL Eq. 3)",
    )
    p.add_argument(
        "--diversity-keep", type=float, default=d.diversity_keep, help="share of the selection kept"
    )
    p.add_argument(
        "--diversity-lambda",
        type=float,
        default=d.diversity_lambda,
        help="weight of the diversity term in the first selection cycle (x decay per cycle)",
    )
    p.add_argument("--diversity-decay", type=float, default=d.diversity_decay)
    p.add_argument(
        "--diversity-optimizer",
        choices=sorted(OPTIMIZERS),
        default=d.diversity_optimizer,
        help="stochastic: lazier-than-lazy greedy; lazy: exact greedy",
    )
    p.add_argument(
        "--diversity-epsilon",
        type=float,
        default=d.diversity_epsilon,
        help="stochastic greedy's epsilon: (n/k) ln(1/epsilon) candidates per step",
    )
    p.add_argument(
        "--full-pass",
        action="store_true",
        help="train on all data in the first round of every cycle (DoCL's cyclical training)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--run", default=None, help="run name (default: DATASET-METHOD)")
    p.add_argument("--storage-path", default=None, help="Ray Train checkpoint storage (shared on clusters)")
    p.add_argument(
        "--snapshot-dir",
        default=None,
        help="store snapshots and log (default: $CURRICULUM_SNAPSHOT_DIR or ~/.curriculum/snapshots)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        default=None,
        help="continue RUN from its last model checkpoint and the matching store state",
    )
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a new local Ray)"
    )
    p.add_argument("--serve", action="store_true", help="serve the REST API during and after training")
    p.add_argument("--host", default="127.0.0.1", help="REST host with --serve")
    p.add_argument("--port", type=int, default=8000, help="REST port with --serve")
    p.add_argument("--json", default=None, help="write the final summary as JSON to this file")
    p.add_argument("--verbose", action="store_true", help="show Ray's and the workers' logs")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="deploy the REST API on a running Ray cluster")
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 to expose it)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--blocking", action="store_true", help="stay in the foreground")


def _bench_parser(sub: argparse._SubParsersAction) -> None:
    # The suites' own parser reads the arguments: importing it here would load the benchmark
    # modules (and their settings for a throwaway local Ray) for every other command too.
    p = sub.add_parser(
        "bench",
        help="run the benchmark suites: curriculum bench [SUITE ...] [--quick] [--out DIR]",
        add_help=False,
    )
    p.add_argument("bench_args", nargs=argparse.REMAINDER)


def cmd_bench(argv: list[str]) -> int:
    from benchmarks.__main__ import main as bench_main

    return bench_main(argv)


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.driver import find_resume_point, init_ray, run_training

    start, factor, floor, cap = args.budget or (None, None, None, None)
    cfg = TrainConfig(
        run=args.run or f"{args.dataset.split(':')[0].split('/')[-1]}-{args.method}",
        dataset=args.dataset,
        model=args.model,
        method=args.method,
        metric=args.metric,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_max=args.lr,
        warm_start=args.warm_start,
        cycle_length=args.cycle,
        gamma=args.gamma,
        budget_start=start,
        budget_factor=factor,
        budget_floor=floor,
        budget_cap=cap,
        full_pass_each_cycle=args.full_pass,
        data_params=args.data_params,
        lerac=args.lerac,
        diversity=args.diversity,
        diversity_keep=args.diversity_keep,
        diversity_lambda=args.diversity_lambda,
        diversity_decay=args.diversity_decay,
        diversity_optimizer=args.diversity_optimizer,
        diversity_epsilon=args.diversity_epsilon,
        seed=args.seed,
        workers=args.workers[0],
        max_workers=args.workers[1],
        gpu=args.gpu,
        snapshot_dir=args.snapshot_dir,
        storage_path=args.storage_path,
    )
    cfg.store_config(1, 2)  # fail on a bad schedule before starting Ray
    if args.resume:
        # The saved configuration wins, except for the cluster shape, which may change between attempts.
        saved, done = find_resume_point(args.resume, args.snapshot_dir)
        cfg = replace(saved, workers=args.workers[0], max_workers=args.workers[1], gpu=args.gpu)
        print(f"resuming run {cfg.run} after round {done + 1}/{cfg.epochs}")
    init_ray(args.address, quiet=not args.verbose)
    if args.serve:
        from scorer_service.serve_app import start

        print(f"REST API at {start(args.host, args.port)}/docs")
    summary = run_training(cfg)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    if args.serve:
        print("serving; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import ray

    from scorer_service.actor import NAMESPACE
    from scorer_service.serve_app import start

    ray.init(address=args.address, namespace=NAMESPACE)
    url = start(args.host, args.port, blocking=args.blocking)
    print(f"REST API at {url} (OpenAPI at {url}/docs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return cmd_bench(argv[1:])
    parser = argparse.ArgumentParser(prog="curriculum", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _serve_parser(sub)
    add_query_parsers(sub)
    add_report_parser(sub)
    _bench_parser(sub)
    args = parser.parse_args(argv)
    try:
        commands = {
            "train": cmd_train,
            "serve": cmd_serve,
            "scores": cmd_scores,
            "export": cmd_export,
            "report": cmd_report,
        }
        return commands[args.command](args)
    except ValueError as e:
        print(f"curriculum: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
