"""WorkflowFinish callbacks: a workflow instance names its tasks' jobs, not their outputs.

Each task with a JobId is read back from CI, and CI's account of the job (outputs, MD5s,
state) is what gets verified: the callback itself contributes only the list of job ids.
"""
from __future__ import annotations

from handlers.ci import Lookup, describe_jobs
from handlers.deadline import Deadline
from handlers.models import Callback, Job, WorkflowTask
from handlers.nodes import MalformedCallback


def expand(callback: Callback, lookup: Lookup, region: str, deadline: Deadline) -> Callback:
    """The callback with one job per workflow task (unchanged when it is a TaskFinish).

    Raises MalformedCallback when the instance cannot be looked up, CiUnavailable when CI
    cannot be asked."""
    execution = callback.workflow_execution
    if execution is None or callback.jobs_detail:
        return callback
    tasks = [task for task in execution.tasks if task.job_id]
    if not tasks:
        return callback
    if not execution.bucket_id:
        raise MalformedCallback("Response.WorkflowExecution.BucketId is needed to read its jobs from CI")
    if not region:
        raise MalformedCallback("a WorkflowFinish callback names no region: set DEFAULT_REGION "
                                "(SCF sets TENCENTCLOUD_REGION to the function's own)")
    ids = tuple(dict.fromkeys(task.job_id for task in tasks))
    known = describe_jobs(lookup, execution.bucket_id, region, ids, deadline)
    jobs = tuple(known.get(task.job_id) or _unknown(task) for task in tasks)
    return Callback(callback.event_name, jobs, execution)


def _unknown(task: WorkflowTask) -> Job:
    """A task whose job CI does not know: reported as a failed job, nothing touched."""
    return Job(job_id=task.job_id, state="Unknown", tag=task.type, code="JobNotFound",
               message=f"CI does not know the job of workflow task {task.name or task.type!r}")
