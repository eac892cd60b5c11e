"""Reading the project's one error shape (docs/contracts.md, "Errors") in tests."""

from __future__ import annotations


def error_of(response, status: int) -> dict:
    """The error body of `response`, checked to be the project's shape with the expected status."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    content_type = response.headers["Content-Type"]  # a Django test response or a requests one
    assert content_type.startswith("application/json"), content_type
    body = response.json()
    assert set(body) == {"type", "errors"}, body
    assert body["type"] == ("validation_error" if status == 400 and _has_attrs(body) else body["type"])
    assert body["type"] in ("validation_error", "client_error", "server_error")
    assert body["errors"] and all(set(e) == {"code", "detail", "attr"} for e in body["errors"]), body
    return body


def _has_attrs(body: dict) -> bool:
    return any(e.get("attr") for e in body.get("errors", []))


def error_attrs(response, status: int | None = None) -> set[str | None]:
    body = error_of(response, status) if status is not None else response.json()
    return {e["attr"] for e in body["errors"]}


def error_codes(response, status: int | None = None) -> set[str]:
    """The error codes of `response`; with `status`, also checks the shape and the status."""
    body = error_of(response, status) if status is not None else response.json()
    return {e["code"] for e in body["errors"]}
