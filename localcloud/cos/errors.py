"""COS-shaped errors: the exception the operations raise and the XML body COS answers with."""
from __future__ import annotations

from xml.sax.saxutils import escape

# Status -> code used when a fault gives a status without a code.
DEFAULT_CODES = {
    400: "InvalidArgument",
    403: "AccessDenied",
    404: "NoSuchKey",
    409: "Conflict",
    412: "PreconditionFailed",
    429: "SlowDown",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

DEFAULT_MESSAGES = {
    "AccessDenied": "Access Denied.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Please reduce your request rate.",
    "SlowDown": "Please reduce your request rate.",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchUpload": "The specified upload does not exist.",
    "PreconditionFailed": "At least one of the preconditions you specified did not hold.",
}


def default_code(status: int) -> str:
    return DEFAULT_CODES.get(status, "InternalError" if status >= 500 else "InvalidRequest")


class CosError(Exception):
    """An error answered as `<Error>` XML with the given HTTP status."""

    def __init__(self, status: int, code: str, message: str | None = None, headers: list[tuple[str, str]] | None = None):
        self.status = status
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, code)
        self.headers = headers or []
        super().__init__(f"{status} {code}: {self.message}")


def no_such_key() -> CosError:
    return CosError(404, "NoSuchKey")


def no_such_bucket() -> CosError:
    return CosError(404, "NoSuchBucket")


def no_such_upload() -> CosError:
    return CosError(404, "NoSuchUpload")


def precondition_failed() -> CosError:
    return CosError(412, "PreconditionFailed")


def invalid_argument(message: str) -> CosError:
    return CosError(400, "InvalidArgument", message)


def malformed_xml(message: str = "The XML you provided was not well-formed.") -> CosError:
    return CosError(400, "MalformedXML", message)


def not_implemented(what: str) -> CosError:
    return CosError(501, "NotImplemented", f"{what} is not supported by the local COS emulator.")


def error_body(code: str, message: str, resource: str, request_id: str, trace_id: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8' ?>"
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{escape(request_id)}</RequestId>"
        f"<TraceId>{escape(trace_id)}</TraceId></Error>"
    ).encode()
