"""Typed, immutable models of a 数据万象 (CI) job callback and of what the function decides.

Field names are the snake_case form of CI's element names (``AuObject`` -> ``au_object``);
``handlers.nodes.build`` relies on that to fill them from XML or JSON alike.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from handlers.nodes import md5_hex, object_key, timestamp

# --- the callback, as CI sends it -------------------------------------------------------


@dataclass(frozen=True)
class CosHeader:
    key: str = ""
    value: str = ""


@dataclass(frozen=True)
class JobInput:
    bucket_id: str = ""
    object: str = ""
    region: str = ""
    cos_headers: tuple[CosHeader, ...] = ()


@dataclass(frozen=True)
class MediaFormat:
    bitrate: float | None = None
    duration: float | None = None
    format_long_name: str = ""
    format_name: str = ""
    num_program: int | None = None
    num_stream: int | None = None
    size: int | None = None
    start_time: float | None = None


@dataclass(frozen=True)
class AudioStream:
    bitrate: float | None = None
    channel: int | None = None
    channel_layout: str = ""
    codec_long_name: str = ""
    codec_name: str = ""
    codec_tag: str = ""
    codec_tag_string: str = ""
    codec_time_base: str = ""
    duration: float | None = None
    index: int | None = None
    sample_fmt: str = ""
    sample_rate: int | None = None
    start_time: float | None = None
    timebase: str = ""


@dataclass(frozen=True)
class VideoStream:
    index: int | None = None
    codec_name: str = ""
    codec_long_name: str = ""
    codec_time_base: str = ""
    codec_tag_string: str = ""
    codec_tag: str = ""
    profile: str = ""
    height: int | None = None
    width: int | None = None
    has_b_frame: int | None = None
    ref_frames: int | None = None
    sar: str = ""
    dar: str = ""
    pix_format: str = ""
    field_order: str = ""
    level: int | None = None
    fps: float | None = None
    avg_fps: str = ""
    timebase: str = ""
    start_time: float | None = None
    duration: float | None = None
    bitrate: float | None = None
    num_frames: int | None = None
    language: str = ""


@dataclass(frozen=True)
class SubtitleStream:
    index: int | None = None
    language: str = ""


@dataclass(frozen=True)
class MediaStreams:
    audio: tuple[AudioStream, ...] = ()
    video: tuple[VideoStream, ...] = ()
    subtitle: tuple[SubtitleStream, ...] = ()


@dataclass(frozen=True)
class MediaInfo:
    format: MediaFormat | None = None
    stream: MediaStreams | None = None


@dataclass(frozen=True)
class Md5Info:
    md5: str = field(default="", metadata={"parse": md5_hex, "required": True})
    object_name: str = field(default="", metadata={"parse": object_key, "required": True})


@dataclass(frozen=True)
class OutputFile:
    bucket: str = ""
    region: str = ""
    object_name: tuple[str, ...] = field(default=(), metadata={"parse": object_key})
    object_prefix: str = field(default="", metadata={"parse": object_key})
    md5_info: tuple[Md5Info, ...] = ()


@dataclass(frozen=True)
class MediaResult:
    output_file: tuple[OutputFile, ...] = ()


@dataclass(frozen=True)
class JobOutput:
    bucket: str = ""
    region: str = ""
    object: str = ""
    au_object: str = ""


@dataclass(frozen=True)
class Operation:
    media_info: MediaInfo | None = None
    media_result: MediaResult | None = None
    output: JobOutput | None = None
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
    job_id: str = field(default="", metadata={"required": True})
    state: str = field(default="", metadata={"required": True})
    code: str = ""
    message: str = ""
    tag: str = ""
    queue_id: str = ""
    creation_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    start_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    end_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    input: JobInput | None = None
    operation: Operation | None = None
    workflow: Workflow | None = None

    @property
    def succeeded(self) -> bool:
        return self.state == "Success"


@dataclass(frozen=True)
class WorkflowTask:
    type: str = ""
    name: str = ""
    job_id: str = ""
    state: str = ""
    create_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    end_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    template_id: str = ""
    template_name: str = ""


@dataclass(frozen=True)
class WorkflowExecution:
    """A WorkflowFinish callback's body: the instance and its tasks, without their outputs
    (each task's job is read back from CI to learn those)."""

    run_id: str = field(default="", metadata={"required": True})
    workflow_id: str = ""
    workflow_name: str = ""
    state: str = ""
    bucket_id: str = ""
    object: str = ""
    create_time: datetime | None = field(default=None, metadata={"parse": timestamp})
    cos_headers: tuple[CosHeader, ...] = ()
    tasks: tuple[WorkflowTask, ...] = ()


@dataclass(frozen=True)
class Callback:
    event_name: str = ""
    jobs_detail: tuple[Job, ...] = ()
    workflow_execution: WorkflowExecution | None = None


# --- what the function decides ----------------------------------------------------------


@dataclass(frozen=True)
class OutputObject:
    """One object a job wrote, and the MD5 CI reported for it (None when it reported none)."""

    bucket: str
    region: str
    key: str
    expected_md5: str | None


class Verdict(str, enum.Enum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    MISSING = "missing"
    SUPERSEDED = "superseded"
    UNVERIFIABLE = "unverifiable"
    ERROR = "error"


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


@dataclass(frozen=True)
class ObjectResult:
    check: Check
    actions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class JobResult:
    job: Job
    outcome: Outcome
    objects: tuple[ObjectResult, ...] = ()
