"""The ``curriculum`` command line: train, serve, and query runs over the REST API."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from trainers.cli.flags import add_config_flags, settings_from_args
from trainers.cli.report import add_report_parser, cmd_report
from trainers.cli.scores import add_query_parsers, cmd_export, cmd_label_issues, cmd_scores
from trainers.cli.tokens import add_token_parser, cmd_token
from trainers.train_config import TrainConfig, default_run_name


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train with a central hardness store (starts local Ray unless RAY_ADDRESS)"
    )
    add_config_flags(p)
    p.add_argument(
        "--resume",
        metavar="RUN",
        default=None,
        help="continue RUN from its last model checkpoint and the matching store state (attaches to "
        "its store when it is still live)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace a live run of the same name (its store is stopped; its snapshots stay on disk)",
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
    p = sub.add_parser(
        "serve",
        help="deploy the REST API on a running Ray cluster; prints its URL and returns (it keeps running)",
    )
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 to expose it)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--blocking", action="store_true", help="stay in the foreground")
    p.add_argument(
        "--token",
        default=None,
        help="the all-runs admin token (default: CURRICULUM_API_TOKEN on the cluster)",
    )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration from the command line (defaults < --config file < flags)."""
    settings = settings_from_args(args)
    cfg = TrainConfig.create(**settings)
    return cfg if "run" in settings else cfg.replace(run=default_run_name(cfg.dataset, cfg.method))


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.driver import init_ray, run_training
    from trainers.images import training_images
    from trainers.resume import find_resume_point

    cfg = train_config(args)
    if args.resume:
        # The saved configuration wins, except for the cluster shape, which may change between attempts.
        saved, done = find_resume_point(args.resume, cfg.durability.snapshot_dir)
        cfg = saved.replace(workers=cfg.workers, gpu=cfg.gpu)
        print(f"resuming run {cfg.run} after round {done + 1}/{cfg.epochs}")
    init_ray(args.address, quiet=not args.verbose)
    if args.serve:
        from scorer_service.ray.serve import start

        print(f"REST API at {start(args.host, args.port, images=training_images)}/docs")
    summary = run_training(cfg, replace=args.replace, resume=bool(args.resume))
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

    from scorer_service.ray.actor import NAMESPACE
    from scorer_service.ray.serve import start
    from trainers.images import training_images

    ray.init(address=args.address, namespace=NAMESPACE)
    if args.blocking:
        print(f"REST API at http://{args.host}:{args.port} (OpenAPI at /docs); Ctrl-C to stop")
    url = start(args.host, args.port, blocking=args.blocking, images=training_images, token=args.token)
    print(f"REST API at {url} (OpenAPI at {url}/docs); deployed on the cluster, it keeps running after")
    print("this command returns (ray.serve.shutdown() or `serve shutdown` stops it)")
    return 0


def cmd_bench(argv: list[str]) -> int:
    """``python -m trainers.benchmarks ARGV`` in its own process, which sets up its own local Ray."""
    return subprocess.run([sys.executable, "-m", "trainers.benchmarks", *argv], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="curriculum", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _serve_parser(sub)
    add_query_parsers(sub)
    add_report_parser(sub)
    add_token_parser(sub)
    sub.add_parser("bench", help="run the benchmark suites (see curriculum bench --help)", add_help=False)
    if argv[:1] == ["bench"]:  # its own parser: python -m trainers.benchmarks
        return cmd_bench(argv[1:])
    args = parser.parse_args(argv)
    commands = {
        "train": cmd_train,
        "serve": cmd_serve,
        "scores": cmd_scores,
        "label-issues": cmd_label_issues,
        "export": cmd_export,
        "report": cmd_report,
        "token": cmd_token,
    }
    try:
        return commands[args.command](args)
    except ValueError as e:
        print(f"curriculum: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
