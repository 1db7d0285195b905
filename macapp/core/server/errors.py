"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with the matching HTTP status.

OpenAI clients (the official SDKs, editors, LangChain) turn this shape into their own exceptions, so a
refused request reads the same whichever server answered it.
"""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class APIError(Exception):
    """A request the server answers with an error document instead of a result."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model {model!r} does not exist on this server (GET /v1/models lists them).",
        param="model",
        code="model_not_found",
    )


def unauthorized() -> APIError:
    return APIError(
        401, "Incorrect or missing API key: send it as 'Authorization: Bearer <key>'.", code="invalid_api_key"
    )


def internal_error() -> APIError:
    return APIError(500, "The server failed to answer this request; its log has the details.", type=SERVER_ERROR)
