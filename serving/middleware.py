"""Pure ASGI middleware: the request body size limit and the HTTP metrics.

Both are plain ASGI (not `BaseHTTPMiddleware`) because they sit on every request's hot path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import messages
from serving.metrics import Metrics

UNMATCHED_ROUTE = "unmatched"  # one label for every unknown path, so 404 fuzzing adds no series


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the streamed body passes the limit; FastAPI re-raises
    `HTTPException`s met while reading a body, so the client gets this 413, not a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=messages.BODY_TOO_LARGE.format(limit=limit))


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_bytes``: at once when Content-Length says so, and while
    streaming (chunked uploads, lying headers) before any parser sees more than the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Close the connection: the rest of the oversized body is not worth reading.
        response = JSONResponse(
            {"detail": messages.BODY_TOO_LARGE.format(limit=self.max_bytes)},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class MetricsMiddleware:
    """Count every HTTP response and time it, labelled by route template (``/predict``, not
    ``/predict/``-or-whatever-was-typed) so label values stay few."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routers: Sequence[Router]) -> None:
        self.app = app
        self.metrics = metrics
        self.routers = routers
        # (route, method, status) -> its counter and histogram series: `labels()` takes a lock and
        # builds a key on every call, so each series is looked up once (label values stay few).
        self._series: dict[tuple[str, str, str], tuple] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering, the server sends a 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            count, duration = self._series_for(
                self._route_template(scope), _method_label(scope["method"]), str(status)
            )
            count.inc()
            duration.observe(time.perf_counter() - start)

    def _series_for(self, route: str, method: str, status: str) -> tuple:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.metrics.http_requests.labels(route=route, method=method, status=status),
                self.metrics.http_duration.labels(route=route),
            )
            self._series[key] = series
        return series

    def _route_template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            # Answered before routing (a 413 on Content-Length, a CORS preflight): match now.
            # (FastAPI wraps included routers, so look in each router for routes with a path.)
            candidates = (r for router in self.routers for r in router.routes if hasattr(r, "path"))
            route = next((r for r in candidates if r.matches(scope)[0] is not Match.NONE), None)
        path = getattr(route, "path", None)
        if not path:
            return UNMATCHED_ROUTE
        # /predict and /predict/ are one endpoint: one label.
        return path.rstrip("/") or "/"


KNOWN_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


def _method_label(method: str) -> str:
    # Methods come from clients: any other name shares one label so no client can grow the series.
    return method if method in KNOWN_METHODS else "other"
