"""The admin API's errors: a status, a short code and a sentence saying what to do."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.code, "detail": self.detail}, self.status, headers=self.headers)
