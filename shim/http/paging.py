"""OpenAI's cursor pagination, shared by every list of items: ``GET
/v1/responses/{id}/input_items`` and ``GET /v1/conversations/{id}/items``. The query parameters
are annotated once here, so both endpoints document and check them alike."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar.params import Parameter

from shim.errors import InvalidRequest

__all__ = ["After", "Limit", "Order", "check_limit", "page_items"]

After = Annotated[str | None, Parameter(description="An item id: list the items that follow it in `order`.")]
Limit = Annotated[int, Parameter(description="Page size, 1 to 100.")]
Order = Annotated[
    Literal["asc", "desc"], Parameter(description="`asc`: oldest first; `desc` (default): newest first.")
]


def check_limit(limit: int) -> None:
    """Before anything is read: a bad page size is the request's fault, whatever the id."""
    if not 1 <= limit <= 100:
        raise InvalidRequest("`limit` must be between 1 and 100.", param="limit", code="invalid_parameter")


def page_items(
    items: list[dict[str, Any]], *, after: str | None, limit: int, order: str, what: str, where: str
) -> dict[str, Any]:
    """One page: the items after the one with id ``after``. ``what`` and ``where`` name them in
    the error for an unknown ``after`` ("input item", "in this response")."""
    check_limit(limit)
    ordered = items if order == "asc" else items[::-1]
    start = 0
    if after is not None:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"No {what} with id {after!r} {where}.", param="after")
        start = ids.index(after) + 1
    chunk = ordered[start : start + limit]
    return {
        "object": "list",
        "data": chunk,
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
        "has_more": start + limit < len(ordered),
    }
