"""What the function decided, summarised from COS: `python -m handlers.summary --bucket B`.

Reads the audit reports under REPORT_PREFIX (env or --reports-prefix) or, without reports,
the `ci-verify`/`ci-job` tags of the objects under --prefix, and prints jobs by outcome,
objects by verdict and every problem with its reason, as a table, JSON or CSV. Exits 1 when
it finds a mismatch or a missing output (a cron job or a CI step can gate on that), 2 on a
usage error, 3 when COS cannot be read, 4 when some objects under the reports prefix are no
readable audit reports (skipped, each with a warning: the summary is incomplete), 0 otherwise.
Needs only the deploy package's dependencies; credentials and COS_ENDPOINT are read as the
function reads them (handlers/storage/cos.py builds the client).

This module is the command's front (arguments, settings, exit statuses); the counting is in
`summarise`, the formats in `render`, the reading of COS in `listing`.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TextIO

import urllib3

from handlers.config import ConfigError, Settings, endpoint, key_prefix
from handlers.operations.report_command.listing import CosListing, collect
from handlers.operations.report_command.render import FORMATS, render
from handlers.operations.report_command.summarise import Summary, since_cutoff

# Exit statuses (README, "Verification report"). A problem found outranks an incomplete summary.
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_COS, EXIT_UNREADABLE = 0, 1, 2, 3, 4


def exit_status(summary: Summary) -> int:
    if summary.failing:
        return EXIT_PROBLEMS
    return EXIT_UNREADABLE if summary.unreadable else EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m handlers.summary", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--bucket", required=True, help="the output bucket, e.g. media-1250000000")
    p.add_argument("--region", help="its region (default: DEFAULT_REGION or TENCENTCLOUD_REGION)")
    p.add_argument("--since", help="only what changed in this window: 24h, 30m, 7d, or a date (default: all)")
    p.add_argument("--prefix", default="", help="only objects whose key starts with this")
    p.add_argument("--reports-prefix", help="where the audit reports are (default: REPORT_PREFIX; unset: use tags)")
    p.add_argument("--format", choices=FORMATS, default="table")
    return p


def local_settings(env: Mapping[str, str]) -> Settings:
    """Credentials and COS_ENDPOINT as the function reads them; nothing else is needed here."""
    missing = [n for n in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY") if not (env.get(n) or "").strip()]
    if missing:
        raise ConfigError(missing[0], f"{' and '.join(missing)} must be set: the keys of a CAM user or role "
                                      "allowed cos:GetBucket, cos:GetObject and cos:GetObjectTagging")
    return Settings(secret_id=env["TENCENTCLOUD_SECRETID"].strip(), secret_key=env["TENCENTCLOUD_SECRETKEY"].strip(),
                    token=env.get("TENCENTCLOUD_SESSIONTOKEN") or None, cos_endpoint=endpoint(env, "COS_ENDPOINT"))


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    env = os.environ if env is None else env
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)  # exits 2 on a usage error
    region = args.region or env.get("DEFAULT_REGION") or env.get("TENCENTCLOUD_REGION")
    try:
        if not region:
            raise ValueError("--region is needed, or DEFAULT_REGION or TENCENTCLOUD_REGION in the environment")
        since = since_cutoff(args.since, datetime.now(timezone.utc)) if args.since else None
        reports_prefix = key_prefix({"REPORT_PREFIX": args.reports_prefix if args.reports_prefix is not None
                                     else env.get("REPORT_PREFIX", "")}, "REPORT_PREFIX")
        settings = local_settings(env)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE

    def progress(line: str) -> None:
        print(line, file=err, flush=True)

    from qcloud_cos.cos_exception import CosClientError, CosServiceError
    try:
        summary = collect(CosListing(settings, args.bucket, region), args.bucket, args.prefix.lstrip("/"),
                          reports_prefix, since, progress)
    except (CosServiceError, CosClientError) as exc:
        message = exc.get_error_msg() if isinstance(exc, CosServiceError) else str(exc)
        print(f"error: COS refused or could not be reached: {message}", file=err)
        return EXIT_COS
    except (OSError, urllib3.exceptions.HTTPError) as exc:  # a body that broke off while it was read
        print(f"error: COS could not be read: {type(exc).__name__}: {exc}", file=err)
        return EXIT_COS
    out.write(render(summary, args.format))
    return exit_status(summary)
