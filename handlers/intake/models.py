"""Typed, immutable models of a 数据万象 (CI) job callback and of what the function decides.

Field names are the snake_case form of CI's element names (``AuObject`` -> ``au_object``);
``handlers.intake.nodes.build`` relies on that to fill them from XML or JSON alike.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handlers.intake.nodes import md5_hex, object_key, timestamp

# --- the callback, as CI sends it -------------------------------------------------------
#
# A tolerant reader: only the fields that decide a verdict or an action are `decides(...)`
# (a malformed one refuses the callback, naming its path). Every other field is read when it
# reads and left at its default when it does not; `opaque()` fields keep CI's tree as it came
# (MediaInfo is ffprobe output: `<Fps>50/1</Fps>`, `<Level>1.000</Level>`), and `Job.raw` keeps
# the whole job node for reports and logs. Nodes the model does not name are never looked at.


# A job's State is one of Submitted, Running, Success, Failed, Pause, Cancel (the `states` of
# DescribeMediaJobs, https://cloud.tencent.com/document/api/460/84766); these three are not an end.
UNFINISHED_STATES = frozenset({"Submitted", "Running", "Pause"})


def decides(default: Any = "", *, parse: Callable[[str, str], Any] | None = None, required: bool = False) -> Any:
    return field(default=default, metadata={"decides": True, "parse": parse, "required": required})


def opaque() -> Any:
    """CI's subtree as parsed (dicts, lists, strings); never compared, never validated."""
    return field(default=None, compare=False, repr=False, metadata={"opaque": True})


@dataclass(frozen=True)
class CosHeader:
    key: str = ""
    value: str = ""


@dataclass(frozen=True)
class JobInput:
    bucket_id: str = decides()
    object: str = decides()
    region: str = decides()
    cos_headers: tuple[CosHeader, ...] = ()


@dataclass(frozen=True)
class Md5Info:
    md5: str = decides(parse=md5_hex)
    object_name: str = decides(parse=object_key)


@dataclass(frozen=True)
class OutputFile:
    bucket: str = decides()
    region: str = decides()
    object_name: tuple[str, ...] = decides((), parse=object_key)
    object_prefix: str = decides(parse=object_key)
    md5_info: tuple[Md5Info, ...] = decides(())


@dataclass(frozen=True)
class MediaResult:
    output_file: tuple[OutputFile, ...] = decides(())


@dataclass(frozen=True)
class JobOutput:
    bucket: str = decides()
    region: str = decides()
    object: str = ""
    au_object: str = ""


@dataclass(frozen=True)
class Operation:
    media_result: MediaResult | None = decides(None)
    output: JobOutput | None = decides(None)
    media_info: Any = opaque()
    user_data: str = ""
    template_id: str = ""
    template_name: str = ""


@dataclass(frozen=True)
class Workflow:
    run_id: str = ""
    workflow_id: str = ""
    workflow_name: str = ""
    name: str = ""


@dataclass(frozen=True)
class Job:
    job_id: str = decides(required=True)
    state: str = decides()  # WordsGeneralize callbacks send none (Code says Success)
    code: str = decides()
    message: str = decides()
    tag: str = decides()
    creation_time: datetime | None = decides(None, parse=timestamp)
    end_time: datetime | None = decides(None, parse=timestamp)
    input: JobInput | None = decides(None)
    operation: Operation | None = decides(None)
    queue_id: str = ""
    start_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    workflow: Workflow | None = None
    raw: Any = field(default=None, compare=False, repr=False, metadata={"raw": True})

    @property
    def succeeded(self) -> bool:
        """CI says so in State; a callback without one (WordsGeneralize) says it in Code."""
        return self.state == "Success" or (not self.state and self.code == "Success")

    @property
    def unfinished(self) -> bool:
        """CI still works on it (or holds it): neither success nor failure yet."""
        return self.state in UNFINISHED_STATES


@dataclass(frozen=True)
class WorkflowTask:
    type: str = decides()
    job_id: str = decides()
    state: str = decides()
    name: str = ""
    create_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    end_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    template_id: str = ""
    template_name: str = ""


@dataclass(frozen=True)
class WorkflowExecution:
    """A WorkflowFinish callback's body: the instance and its tasks, without their outputs
    (each task's job is read back from CI to learn those)."""

    run_id: str = decides(required=True)
    workflow_id: str = decides()
    workflow_name: str = ""
    state: str = decides()
    bucket_id: str = decides()
    tasks: tuple[WorkflowTask, ...] = decides(())
    object: str = ""
    create_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    cos_headers: tuple[CosHeader, ...] = ()


@dataclass(frozen=True)
class Callback:
    event_name: str = decides()
    jobs_detail: tuple[Job, ...] = decides(())
    workflow_execution: WorkflowExecution | None = decides(None)


# --- what the function decides ----------------------------------------------------------


@dataclass(frozen=True)
class OutputObject:
    """One object a job wrote, and the MD5 CI reported for it (None when it reported none)."""

    bucket: str
    region: str
    key: str
    expected_md5: str | None

    @property
    def placed(self) -> bool:
        """False when no node of the job says which bucket or region holds the object."""
        return bool(self.bucket and self.region)


class Verdict(str, enum.Enum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    MISSING = "missing"
    SUPERSEDED = "superseded"
    UNVERIFIABLE = "unverifiable"
    ERROR = "error"
    PENDING = "pending"  # VERIFY_MODE=server: a CI FileHashCode job is hashing it; its callback decides


class Method(str, enum.Enum):
    ETAG = "etag"
    CONTENT = "content"
    NONE = "none"


class Outcome(str, enum.Enum):
    VERIFIED = "verified"
    FAILED = "failed"
    FAILED_JOB = "failed-job"
    RETRY = "retry"
    SKIPPED = "skipped"
    PENDING = "pending"  # some outputs wait for a CI FileHashCode job's callback


@dataclass(frozen=True)
class ObjectState:
    """What a HEAD tells about an object: enough to decide without reading it, and to carry
    its metadata along when it is moved."""

    etag: str
    size: int
    last_modified: datetime
    crc64: str = ""
    metadata: tuple[tuple[str, str], ...] = ()  # Content-Type, x-cos-meta-*, ... as sent back


@dataclass(frozen=True)
class Check:
    """The verdict on one output object and how it was reached."""

    target: OutputObject
    verdict: Verdict
    method: Method
    reason: str = ""
    state: ObjectState | None = None
    content_md5: str | None = None  # when the content was hashed
    too_large: bool = False  # not hashed: it takes longer than any invocation of this configuration has


@dataclass(frozen=True)
class ObjectResult:
    check: Check
    actions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""
    moved_etag: str = ""  # the ETag of the copy a move made: a copy's ETag need not be its source's


@dataclass(frozen=True)
class JobResult:
    job: Job
    outcome: Outcome
    objects: tuple[ObjectResult, ...] = ()
    # Some of the job's outputs only (a FileHashCode callback finishes one): its audit report is
    # merged into the job's, not written over it.
    partial: bool = False
