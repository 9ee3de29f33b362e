"""How the API answers a request it cannot serve: pydantic's validation errors turned into one
status code and one sentence from `serving.messages`, and every HTTP error as ``{"detail": ...}``
JSON. `serving.main.create_app` installs both handlers."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from serving import messages
from serving.routes import json_response

IMAGE_FIELDS = ("image_vector", "image_vectors")
DIGIT_FIELDS = ("predicted_digit", "actual_digit")
NON_FINITE_LITERAL = re.compile(r"(?<![\w\"])-?(NaN|Infinity)(?![\w\"])")


def describe_validation_error(exc: RequestValidationError) -> tuple[int, str]:
    """Turn pydantic's list of errors into one status code and one sentence from `messages`."""
    error = exc.errors()[0]
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "json_invalid":
        body = exc.body if isinstance(exc.body, str) else ""
        reason = str((error.get("ctx") or {}).get("error", ""))
        # orjson stops at NaN/Infinity literals and at numbers like 1e400 that overflow a double.
        if NON_FINITE_LITERAL.search(body) or "infinity" in reason:
            if '"strokes"' in body:
                return 422, messages.STROKES_NOT_FINITE.format(index="?", point="?")
            return 422, messages.NOT_FINITE.format(field="image_vector")
        return 400, messages.INVALID_JSON
    if loc == ("body",):
        return 422, messages.BODY_NOT_OBJECT
    field = str(loc[1]) if len(loc) > 1 else "body"
    if kind == "missing" and len(loc) == 2:
        return 422, messages.MISSING_FIELD.format(field=field)
    if field in IMAGE_FIELDS:
        batch = field == "image_vectors"
        if batch and len(loc) == 2:  # the list of images itself
            if kind == "too_short":
                return 422, messages.BATCH_EMPTY
            if kind == "too_long":
                return 422, messages.BATCH_TOO_LARGE.format(limit=error["ctx"]["max_length"])
            return 422, messages.NOT_A_LIST.format(field=field)
        name = f"image_vectors[{loc[2]}]" if batch else field
        is_item = len(loc) == (4 if batch else 3)
        if not is_item:
            if kind in ("too_short", "too_long"):
                return 422, messages.WRONG_LENGTH.format(field=name)
            return 422, messages.NOT_A_LIST.format(field=name)
        if kind == "finite_number":
            return 422, messages.NOT_FINITE.format(field=name)
        if kind in ("greater_than_equal", "less_than_equal"):
            return 422, messages.OUT_OF_RANGE.format(field=name)
        return 422, messages.NOT_A_NUMBER.format(field=name)
    if field in DIGIT_FIELDS:
        return 422, messages.DIGIT_INVALID.format(field=field)
    if field == "strokes":
        return 422, describe_strokes_error(kind, loc[2:])
    where = ".".join(str(part) for part in loc[1:]) or "body"
    return 422, messages.OTHER_INVALID.format(field=where, problem=error["msg"])


def describe_strokes_error(kind: str, where: tuple) -> str:
    """The message of a schema error inside ``strokes``; ``where`` is the error's place below it
    (stroke, point, coordinate)."""
    if not where:
        return messages.NO_STROKES if kind == "too_short" else messages.STROKES_NOT_A_LIST
    if len(where) == 1:
        return (
            messages.EMPTY_STROKE.format(index=where[0])
            if kind == "too_short"
            else messages.STROKES_NOT_A_LIST
        )
    if len(where) == 3 and kind == "finite_number":
        return messages.STROKES_NOT_FINITE.format(index=where[0], point=where[1])
    return messages.NOT_A_POINT.format(index=where[0], point=where[1])


async def validation_error_handler(request: Request, exc: RequestValidationError) -> Response:
    status, detail = describe_validation_error(exc)
    return json_response({"detail": detail}, status)


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    response = json_response({"detail": str(exc.detail)}, exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response
