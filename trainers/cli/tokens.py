"""``curriculum token create|list|revoke``: the service's scoped API tokens, on the cluster's token
actor (:mod:`scorer_service.ray.tokens`), effective on every replica within a second, no restart."""

from __future__ import annotations

import argparse
import time

from scorer_service.core.tokens import ROLE_DOES, ROLES


def add_token_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="create, list or revoke scoped API tokens (no restart needed)")
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto)")
    verbs = p.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="a new token; its secret is printed once")
    create.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="; ".join(f"{role}: {does}" for role, does in ROLE_DOES.items()),
    )
    scope = create.add_mutually_exclusive_group()
    scope.add_argument("--run", default=None, help="limit it to this run")
    scope.add_argument("--prefix", default=None, help="limit it to runs whose name starts so")
    create.add_argument("--name", default="", help="who or what holds it")
    verbs.add_parser("list", help="every token's id, role and scope (never a secret)")
    revoke = verbs.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")


def cmd_token(args: argparse.Namespace) -> int:
    import ray

    from scorer_service.ray.actor import NAMESPACE
    from scorer_service.ray.errors import unwrap
    from scorer_service.ray.tokens import token_actor

    ray.init(address=args.address, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False)
    try:
        actor = token_actor()
        if args.verb == "create":
            secret, grant = ray.get(actor.create.remote(args.role, args.run, args.prefix, args.name))
            print(f"token {grant.id}: {grant.role} on {grant.scope}")
            print(secret)
        elif args.verb == "list":
            for _, g in sorted(ray.get(actor.entries.remote()), key=lambda e: (e[1].created, e[1].id)):
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(g.created))
                print(f"{g.id}  {g.role:<5}  {g.scope:<30}  {when}  {g.name}")
        else:
            grant = ray.get(actor.revoke.remote(args.id))
            print(f"revoked token {grant.id} ({grant.role} on {grant.scope})")
    except ray.exceptions.RayTaskError as e:
        raise ValueError(str(unwrap(e))) from None
    finally:
        ray.shutdown()
    return 0
