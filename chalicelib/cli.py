"""Operators' command line: `python -m chalicelib.cli renew|audit|token`, against the same store
the server uses (DYNAMODB_ENDPOINT, or the running `make run` server's store in a local stage)."""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

from . import auth, clock, config


def _bind_store() -> None:
    if config.settings().is_local and not os.environ.get("DYNAMODB_ENDPOINT"):
        marker = Path(os.environ.get("DATA_DIR", ".data")) / "endpoint"
        if not marker.exists():
            sys.exit("No store to talk to: start `make run` first, or set DYNAMODB_ENDPOINT.")
        os.environ["DYNAMODB_ENDPOINT"] = marker.read_text().strip()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")  # the embedded store takes any
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        config.reload()
    from .credits import models

    models.bind(config.settings())


def cmd_token(args: argparse.Namespace) -> int:
    try:
        print(auth.mint_dev_token(args.user, scope=args.scope or "", ttl=args.ttl))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    _bind_store()
    from .credits import ledger

    result = ledger.audit()
    for workspace_id, problems in sorted(result.problems.items()):
        for problem in problems:
            print(f"{workspace_id}: {problem}")
    verdict = "clean" if result.clean else f"{len(result.problems)} wallet(s) differ"
    print(f"audited {result.wallets} wallets, {result.entries} ledger entries: {verdict}")
    return 0 if result.clean else 1


def cmd_renew(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    if args.date:
        day = datetime.strptime(args.date, "%Y-%m-%d").date()
        # "as if run at the end of that day": every cycle ending on or before it renews.
        moment = datetime.combine(day + timedelta(days=1), time(), tzinfo=timezone.utc) - timedelta(seconds=1)
    else:
        moment = now
    if moment.date() > now.date() and not config.settings().is_local:
        # A future day would expire plan credits before their cycle ends and grant the next early.
        # Locally it is how people play time forward.
        print(f"renew: {args.date} is after today (UTC); a deployed stage renews nothing early.", file=sys.stderr)
        return 2
    _bind_store()
    from .credits import renewal

    clock.set_now(moment)
    if config.settings().is_local and not config.settings().stripe_secret_key:
        # Locally the Stripe stand-in plays Stripe's clock first: periods that ended renew
        # (invoice.paid) or end (cancelled at period end), as Stripe would by then.
        from .billing.standin import StandIn

        sent = StandIn().tick(moment)
        if sent:
            print(f"stand-in: {sent} Stripe event(s) for subscriptions whose period ended")
    report = renewal.run(moment, progress=sys.stderr.isatty())
    print(report.summary())
    return 0


def cmd_contract(args: argparse.Namespace) -> int:
    _bind_store()
    from .credits import plans

    until = datetime.combine(datetime.strptime(args.until, "%Y-%m-%d").date(), time(), tzinfo=timezone.utc)
    result = plans.set_contract(args.workspace, args.credits, until, datetime.now(timezone.utc))
    print(f"{result['workspace_id']}: enterprise, {result['credits_per_cycle']} credits a cycle, paid through "
          f"{args.until}; granted now: {result['granted_now']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("renew", help="renew every cycle due, as of the end of --date (UTC)")
    p.add_argument("--date", help="YYYY-MM-DD (default: now)")
    p.set_defaults(func=cmd_renew)
    p = sub.add_parser("audit", help="check every wallet against its ledger")
    p.set_defaults(func=cmd_audit)
    p = sub.add_parser("contract", help="put a team workspace on an enterprise contract")
    p.add_argument("--workspace", required=True)
    p.add_argument("--credits", type=int, required=True, help="credits per cycle, shared by the team")
    p.add_argument("--until", required=True, help="YYYY-MM-DD: the contract is paid through this day")
    p.set_defaults(func=cmd_contract)
    p = sub.add_parser("token", help="print a dev token (local and dev stages)")
    p.add_argument("--user", required=True)
    p.add_argument("--scope", default="")
    p.add_argument("--ttl", type=int, default=86400)
    p.set_defaults(func=cmd_token)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
