"""WorkflowFinish callbacks: a workflow instance names its tasks' jobs, not their outputs.

Each task with a JobId is read back from CI, and CI's account of the job (outputs, MD5s,
state) is what gets verified: the callback itself contributes only the list of job ids.
"""
from __future__ import annotations

from handlers import log
from handlers.ci.confirm import Lookup, describe_jobs
from handlers.config import ConfigError
from handlers.deadline import Deadline
from handlers.intake.models import Callback, Job, WorkflowTask


def expand(callback: Callback, lookup: Lookup, region: str, deadline: Deadline,
           candidate_buckets: tuple[str, ...] = ()) -> Callback:
    """The callback with one job per workflow task (unchanged when it is a TaskFinish).

    A workflow instance that names no bucket (`<BucketId/>`) is looked up in each of
    `candidate_buckets` in turn (the ALLOWED_BUCKETS list) until CI knows every task's job;
    with none to try it is acknowledged with no jobs, and the sweep finds them.

    Raises ConfigError without a region to look the instance up in, CiUnavailable when CI
    cannot be asked."""
    execution = callback.workflow_execution
    if execution is None or callback.jobs_detail:
        return callback
    tasks = [task for task in execution.tasks if task.job_id]
    if not tasks:
        return callback
    if not region:  # the callback is well formed: the function lacks the setting to look its jobs up
        raise ConfigError("DEFAULT_REGION", "is not set, nor TENCENTCLOUD_REGION (SCF sets it to the function's "
                                            "own): a WorkflowFinish callback names no region, and its jobs are "
                                            "looked up in this one")
    buckets = (execution.bucket_id,) if execution.bucket_id else candidate_buckets
    if not buckets:
        log.warning("WorkflowFinish names no bucket and ALLOWED_BUCKETS is '*': its jobs are left to the sweep",
                    runId=execution.run_id, jobIds=[task.job_id for task in tasks])
        return Callback(callback.event_name, (), execution)
    ids = tuple(dict.fromkeys(task.job_id for task in tasks))
    known: dict[str, Job] = {}
    for bucket in buckets:
        wanted = tuple(job_id for job_id in ids if job_id not in known)
        if not wanted:
            break
        known.update(describe_jobs(lookup, bucket, region, wanted, deadline))
    first_task = {task.job_id: task for task in reversed(tasks)}  # one job per id, however often named
    jobs = tuple(known.get(job_id) or _unknown(first_task[job_id]) for job_id in ids)
    return Callback(callback.event_name, jobs, execution)


def _unknown(task: WorkflowTask) -> Job:
    """A task whose job CI does not know: reported as a failed job, nothing touched."""
    return Job(job_id=task.job_id, state="Unknown", tag=task.type, code="JobNotFound",
               message=f"CI does not know the job of workflow task {task.name or task.type!r}")
