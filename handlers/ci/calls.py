"""How CI's answers through the SDK become the function's kinds of failure (shared by the job API and
the file-hash API): TransientError to try again, StorageError to give up, with the real cause of a 403."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qcloud_cos.cos_exception import CosClientError, CosServiceError

from handlers import exchange
from handlers.errors import StorageError, TransientError


def ci_call(where: str, request: Callable[[], Any], role_actions: str) -> Any:
    """The SDK's answer to a CI request; None for a 404 (CI knows no such bucket or job).
    Failures are sorted into kinds: TransientError (network, 429, 5xx, an answer cut or broken
    off, which the SDK may read and parse after the exchange: exchange.BROKEN_ANSWER) or
    StorageError, which names the CAM actions (`role_actions`) the execution role needs when
    CI answers 403."""
    try:
        return request()
    except CosClientError as exc:
        raise TransientError(f"{where}: {exc.get_message() if hasattr(exc, 'get_message') else exc}") from None
    except exchange.BROKEN_ANSWER as exc:
        raise TransientError(f"{where}: the answer could not be read: {type(exc).__name__}: {exc}") from None
    except CosServiceError as exc:
        status, code = exc.get_status_code(), exc.get_error_code() or ""
        if status == 404:
            return None
        message = f"{where}: {status} {code} {exc.get_error_msg() or ''}".strip()
        if status == 429 or status >= 500:
            raise TransientError(message) from None
        raise StorageError(f"{message} ({refusal_cause(code, role_actions)})" if status == 403 else message) from None


# 403 codes that refuse the credentials themselves, not what they may do
# (https://www.tencentcloud.com/document/product/436/40105: InvalidAccessKeyId, SignatureDoesNotMatch;
# a temporary SecretId sent without its session token is refused the same way).
CREDENTIAL_REFUSALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"})


def refusal_cause(code: str, role_actions: str) -> str:
    """What to fix for a 403: the credentials (temporary keys need their session token), or the
    execution role's permissions (AccessDenied and the rest)."""
    if code in CREDENTIAL_REFUSALS:
        return ("the credentials were refused: TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY, with "
                "TENCENTCLOUD_SESSIONTOKEN when the keys are temporary (SCF sets all three from the execution role)")
    return f"the execution role needs {role_actions}"
