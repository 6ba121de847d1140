"""`python3 dev.py reconcile` (`python -m handlers.backfill`): the backfill as a command, run here.

It builds the function itself (App) to check the jobs of a period with the sweep's machinery
(handlers/reconcile/backfill.py), so it sits at the top with the app, like the report command.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TextIO

from handlers.app import App
from handlers.config import ConfigError
from handlers.deadline import Deadline
from handlers.operations.report_command.listing import CosListing, collect
from handlers.operations.report_command.render import render
from handlers.reconcile import backfill
from handlers.reconcile.backfill import (
    FORMATS,
    MAX_ROUNDS,
    ROUND_SECONDS,
    backfill_settings,
    finished,
    one_round,
    period_of,
    progress_line,
)
from handlers.reconcile.listing import CI_TIME, Period
from handlers.settings import from_env


def parser() -> argparse.ArgumentParser:
    about = (backfill.__doc__ or "").split("\n\n")[0]
    p = argparse.ArgumentParser(prog="python3 dev.py reconcile", description=about)
    p.add_argument("--bucket", required=True, help="the bucket CI runs the jobs in, e.g. media-1250000000")
    p.add_argument("--since", required=True, help="how far back: 30d, 24h, 2w, or a date like 2026-10-01")
    p.add_argument("--until", help="the period's end (default: now)")
    p.add_argument("--region", help="the bucket's region (default: DEFAULT_REGION or TENCENTCLOUD_REGION)")
    p.add_argument("--queue", action="append", default=[], help="a media queue id (default: the bucket's queues)")
    p.add_argument("--tags", default="", help="job types, comma-separated (default: RECONCILE_TAGS)")
    p.add_argument("--round-seconds", type=int, default=ROUND_SECONDS, help=argparse.SUPPRESS)
    p.add_argument("--format", choices=FORMATS, default="table", help="the closing summary's format")
    return p


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    env = os.environ if env is None else env
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    try:
        settings = from_env(env)
        region = args.region or settings.region
        if not region:
            raise ValueError("--region is needed (or DEFAULT_REGION)")
        start, end = period_of(args.since, args.until, datetime.now(timezone.utc))
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    settings = replace(backfill_settings(settings, args.bucket, region, args.queue, tags, allow_bucket=True),
                       log_level="WARNING")
    app = App(settings)  # the function's own pipeline and clients
    period = Period(start, end, "backfill")
    progress(f"backfill of {args.bucket} ({region}): jobs created from {start.strftime(CI_TIME)} to "
             f"{end.strftime(CI_TIME)}, tags {', '.join(settings.reconcile_tags)}")
    me = f"backfill-{os.getpid()}-{int(time.time())}"
    try:
        idle = 0
        for number in range(1, MAX_ROUNDS + 1):
            deadline = Deadline.after(max(10, args.round_seconds))
            with contextlib.redirect_stdout(err):  # the function's log lines (problems only) go with the progress
                report = one_round(app.pipeline, period, deadline, me)
            progress(progress_line(number, report))
            if finished(report):
                break
            idle = idle + 1 if not (report.listed or report.checked) else 0
            if idle >= 3:
                progress("no progress in three rounds: stopping (run the same command again to resume)")
                return 3
    except KeyboardInterrupt:
        progress("interrupted: run the same command again to resume from the checkpoint")
        return 130
    finally:
        app.close()
    summary = collect(CosListing(settings, args.bucket, region), args.bucket, "", settings.report_prefix, start,
                      progress)
    out.write(render(summary, args.format))
    return 1 if summary.failing else 0


if __name__ == "__main__":
    sys.exit(main())
