"""API 3.0 errors: every failure is answered with HTTP 200 and `Response.Error{Code, Message}`."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def missing_parameter(name: str) -> ApiError:
    return ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")
