"""Small builders for callback bodies, so each test states only what it is about."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
BUCKET = "test-123456789"
REGION = "ap-chongqing"


def job_xml(md5s: dict[str, str] | None, names: list[str], prefix: str = "", tag: str = "VoiceSeparate",
            state: str = "Success", job_id: str = "j0000000000000000000000000000001", bucket: str = BUCKET,
            region: str = REGION, event_name: str | None = "TaskFinish", empty_md5_info: bool = False,
            extra_operation: str = "", code: str = "Success", message: str = "",
            times: tuple[str, str, str] | None = None) -> bytes:
    """A one-job callback in CI's XML form with the given Md5Info entries and ObjectName list.
    The job ends now unless `times` says otherwise, so fresh objects are not `superseded`."""
    if times is None:
        now = datetime.now(timezone(timedelta(hours=8)))
        times = tuple((now - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S%z") for s in (6, 5, 0))
    md5_info = "".join(f"<Md5Info><Md5>{md5}</Md5><ObjectName>{key}</ObjectName></Md5Info>"
                       for key, md5 in (md5s or {}).items())
    if empty_md5_info:
        md5_info = "<Md5Info/>"
    object_names = "".join(f"<ObjectName>{name}</ObjectName>" for name in names)
    event = f"<EventName>{event_name}</EventName>" if event_name else ""
    return f"""<Response>{event}<JobsDetail>
<Code>{code}</Code><Message>{message}</Message><JobId>{job_id}</JobId><State>{state}</State><Tag>{tag}</Tag>
<CreationTime>{times[0]}</CreationTime><StartTime>{times[1]}</StartTime><EndTime>{times[2]}</EndTime>
<Input><BucketId>{bucket}</BucketId><Object>input/demo.mp3</Object><Region>{region}</Region></Input>
<Operation>{extra_operation}<MediaResult><OutputFile><Bucket>{bucket}</Bucket><Region>{region}</Region>
{md5_info}{object_names}<ObjectPrefix>{prefix}</ObjectPrefix></OutputFile></MediaResult></Operation>
</JobsDetail></Response>""".encode()
