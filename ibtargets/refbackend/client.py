"""Blocking HTTP client of the backend API, used by the CLI (bounded timeouts, clear errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_API_URL = "http://127.0.0.1:8000"
CONNECT_TIMEOUT_S = 5.0


class ApiError(Exception):
    """The API answered with an error, or could not be asked."""


class ApiUnreachable(ApiError):
    """No HTTP answer: connection refused, reset or timed out."""


@dataclass(frozen=True)
class ApiResponse:
    """One answer: the HTTP status and the decoded JSON body."""

    status: int
    body: Any

    @property
    def data(self) -> Any:
        """The envelope's ``data`` (None when absent)."""
        return self.body.get("data") if isinstance(self.body, dict) else None

    @property
    def error_message(self) -> str:
        """A human-readable error from the envelope, FastAPI's 422 detail, or the status."""
        body = self.body if isinstance(self.body, dict) else {}
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{error['message']} [{error.get('code')}]"
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        if detail:
            return str(detail)
        return f"HTTP {self.status}"


class ApiClient:
    """Calls ``<base_url>/api/v1/...``.

    Args:
        base_url: the API's address, e.g. ``http://127.0.0.1:8000``.
        timeout_s: bound on reading each answer.
    """

    def __init__(self, base_url: str = DEFAULT_API_URL, timeout_s: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def call(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None,
             timeout_s: float | None = None) -> ApiResponse:
        """One request; any HTTP status is returned, only transport failures raise.

        Raises:
            ApiUnreachable: refused, reset or no answer within the bound.
            ApiError: the answer is not JSON.
        """
        url = f"{self.base_url}/api/v1{path}"
        read_timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            response = self._session.request(method, url, json=json, params=params,
                                             timeout=(min(CONNECT_TIMEOUT_S, read_timeout), read_timeout))
        except requests.Timeout:
            raise ApiUnreachable(f"Could not connect to the KTRDR API at {self.base_url}: "
                                 f"no answer within {read_timeout:g} s") from None
        except requests.RequestException as exc:
            raise ApiUnreachable(f"Could not connect to the KTRDR API at {self.base_url} "
                                 f"(is the backend running?): {_reason(exc)}") from None
        try:
            body = response.json()
        except ValueError:
            raise ApiError(f"{method} {url} answered HTTP {response.status_code} without JSON") from None
        return ApiResponse(response.status_code, body)

    def close(self) -> None:
        """Release the HTTP session."""
        self._session.close()


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, without the urllib3 noise."""
    cause: BaseException = exc
    while cause.__cause__ is not None or (cause.args and isinstance(cause.args[0], BaseException)):
        cause = cause.__cause__ or cause.args[0]
    text = str(cause)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text
