"""Who may call, and what a callback may name: the callback token and the allow-lists.

CI signs nothing it posts, and a Function URL is public. A secret token in the callback URL
proves the caller was given that URL; the allow-lists bound what even a caller holding the
token can make the function touch.
"""
from __future__ import annotations

import hmac
from collections.abc import Iterable

from handlers.config import ANY_BUCKET, ConfigError, Settings, combined
from handlers.intake.callback import output_objects
from handlers.intake.http import HttpError, HttpRequest
from handlers.intake.models import Callback, Job
from handlers.intake.settings import callback_problems

TOKEN_QUERY = "token"
TOKEN_HEADER = "x-callback-token"
REDACTED = "***"


def configuration_problem(settings: Settings) -> ConfigError | None:
    """What makes every callback unanswerable, every problem named by its variable (the
    first as `variable`); None when nothing does."""
    problems = callback_problems(settings)
    return combined(problems) if problems else None


# --- the token ------------------------------------------------------------------------------

def presented_tokens(request: HttpRequest) -> tuple[str, ...]:
    """Every place a caller may put the token: ?token=, X-Callback-Token, the last path segment."""
    candidates = (request.query.get(TOKEN_QUERY, ""), request.headers.get(TOKEN_HEADER, ""),
                  last_path_segment(request.path))
    return tuple(c for c in candidates if c)


def last_path_segment(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def token_accepted(presented: Iterable[str], configured: Iterable[str]) -> bool:
    """Compared in constant time against every configured token (no early exit), so timing
    tells neither how much of a token matched nor which of the rotated tokens did."""
    accepted = False
    expected = [token.encode() for token in configured]
    for candidate in presented:
        given = candidate.encode("utf-8", "surrogatepass")
        for token in expected:
            accepted |= hmac.compare_digest(given, token)
    return accepted


def authenticate(request: HttpRequest, settings: Settings) -> None:
    """401 when no token was presented, 403 when none presented is a configured one."""
    if not settings.callback_tokens:
        return  # ALLOW_UNAUTHENTICATED=true; configuration_problem refuses every other case
    presented = presented_tokens(request)
    if not presented:
        raise HttpError(401, "a callback token is required: add ?token=<CALLBACK_TOKEN> to the callback URL "
                             "(or send it as X-Callback-Token, or as the URL's last path segment)",
                        {"WWW-Authenticate": 'Token realm="ci-callback"'})
    if not token_accepted(presented, settings.callback_tokens):
        raise HttpError(403, "the callback token is not valid")


def redacted_target(request: HttpRequest) -> str:
    """The request's path and query for the log, with every place a token can hide masked."""
    path = request.path
    segment = last_path_segment(path)
    if segment:
        path = path[:path.rstrip("/").rfind("/") + 1] + REDACTED
    query = "&".join(f"{name}={REDACTED if name == TOKEN_QUERY else value}"
                     for name, value in sorted(request.query.items()))
    return f"{path}?{query}" if query else path


# --- the allow-lists ------------------------------------------------------------------------

def named_buckets(job: Job) -> list[tuple[str, str]]:
    """(where, bucket) for every bucket the job names: its input and every output."""
    named = []
    if job.input is not None and job.input.bucket_id:
        named.append(("Input.BucketId", job.input.bucket_id))
    operation = job.operation
    if operation is not None and operation.output is not None and operation.output.bucket:
        named.append(("Operation.Output.Bucket", operation.output.bucket))
    if operation is not None and operation.media_result is not None:
        for i, output in enumerate(operation.media_result.output_file):
            if output.bucket:
                named.append((f"Operation.MediaResult.OutputFile[{i}].Bucket", output.bucket))
    return named


def check_allowed(callback: Callback, settings: Settings) -> None:
    """403 naming the first bucket or key outside ALLOWED_BUCKETS / ALLOWED_PREFIXES."""
    execution = callback.workflow_execution
    if execution is not None and execution.bucket_id and ANY_BUCKET not in settings.allowed_buckets \
            and execution.bucket_id not in settings.allowed_buckets:
        raise HttpError(403, f"workflow {execution.run_id}: bucket {execution.bucket_id!r} is not in ALLOWED_BUCKETS")
    for job in callback.jobs_detail:
        if ANY_BUCKET not in settings.allowed_buckets:
            for where, bucket in named_buckets(job):
                if bucket not in settings.allowed_buckets:
                    raise HttpError(403, f"job {job.job_id}: bucket {bucket!r} ({where}) is not in ALLOWED_BUCKETS")
        if settings.allowed_prefixes:
            for target in output_objects(job):
                if not target.key.startswith(settings.allowed_prefixes):
                    raise HttpError(403, f"job {job.job_id}: key {target.key!r} in {target.bucket} is not under "
                                         "ALLOWED_PREFIXES")
