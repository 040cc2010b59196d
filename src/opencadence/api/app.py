"""The ASGI application: REST, OAuth, SOAP login and the test clock control."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencadence import errors
from opencadence.api import (
    actions,
    bodies,
    bulk1,
    bulk2,
    collections,
    composite,
    conversion,
    email_settings,
    event_schemas,
    health,
    identity,
    oauth,
    openapi,
    rest,
    search,
    soap,
    streaming,
    tracking,
    versions,
)
from opencadence.api import dispatch as api_dispatch
from opencadence.api import errors as api_errors
from opencadence.clock import ManualClock, SystemClock
from opencadence.org import Org
from opencadence.storage import values
from opencadence.web import pages as web_pages


async def list_versions(request: Request) -> Response:
    return rest.json_response(versions.all_versions())


async def openapi_document(request: Request) -> Response:
    org: Org = request.app.state.org
    return rest.json_response(openapi.document(org.registry))


def _advance(clock: ManualClock, seconds: float) -> datetime:
    """Move the clock ``seconds`` on; NUMBER_OUTSIDE_VALID_RANGE past year 9999 (1e300)."""
    try:
        return clock.advance(seconds=float(seconds))
    except (OverflowError, ValueError):
        raise errors.NumberOutsideValidRange(
            f"advance: {seconds} seconds would move the clock past 9999-12-31"
        ) from None


def collapse_slashes(scope: Scope) -> Scope:
    """``//services/data`` is ``/services/data``: the sf CLI keeps the instance URL it was
    given with a trailing slash (``https://host/``) and joins paths to it, and Salesforce's
    servers read repeated slashes as one (docs/sf-cli.md)."""
    path = re.sub("/{2,}", "/", scope["path"])
    raw = re.sub(b"/{2,}", b"/", scope.get("raw_path") or path.encode())
    return {**scope, "path": path, "raw_path": raw}


class CatchAll:
    """Answers an unexpected exception with 500 UNKNOWN_EXCEPTION and does not re-raise it.

    Starlette's ServerErrorMiddleware sends the handler's response and then re-raises, and
    uvicorn closes a connection whose application raised after its response began: the
    client's next request on that keep-alive connection was reset. Caught here, the
    connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "//" in scope["path"]:
            scope = collapse_slashes(scope)
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            response = await api_errors.unexpected(Request(scope, receive), exc)  # logged
            if started:  # too late for an error response: let the server close it
                raise
            await response(scope, receive, send)


class _App(Starlette):
    """Starlette with a shorter stack around its router: CatchAll, then the exception
    handlers (ExceptionMiddleware), then the router. Starlette's own outermost layer,
    ServerErrorMiddleware, did what CatchAll does (answer an unexpected exception with the
    ``Exception`` handler's 500, re-raise once the response began), one await and one wrapped
    ``send`` more per request."""

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {k: v for k, v in self.exception_handlers.items() if k not in (500, Exception)}
        return CatchAll(ExceptionMiddleware(self.router, handlers=handlers, debug=self.debug))


class _Router(Router):
    """Starlette's router, remembering which route a (method, path) fully matched: each
    request otherwise tried every route before its own in order, a regular expression each
    (the query route is the 24th). Matching depends on nothing but the method and the path,
    so the remembered route is the one the scan would find; partial matches (405), misses
    and mounts are scanned as before."""

    #: (method, path) pairs remembered; past it, all are forgotten.
    REMEMBERED = 4096

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        super().__init__(routes=routes)
        self._matched: dict[tuple[str, str, str], tuple[BaseRoute, Any]] = {}
        self._routes_seen = len(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path_params"):
            await super().app(scope, receive, send)
            return
        if len(self.routes) != self._routes_seen:  # routes added since: scan again
            self._matched.clear()
            self._routes_seen = len(self.routes)
        key = (scope["method"], scope["path"], scope.get("root_path", ""))
        found = self._matched.get(key)
        if found is not None:
            route, child = found
            child = {"endpoint": child["endpoint"], "path_params": dict(child["path_params"])}
        else:
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    if type(route) is Route:
                        if len(self._matched) >= self.REMEMBERED:
                            self._matched.clear()
                        self._matched[key] = (route, child)
                        child = {**child, "path_params": dict(child["path_params"])}
                    break
                if match is Match.PARTIAL:  # a later full match would win: Starlette's scan
                    await super().app(scope, receive, send)
                    return
            else:  # no route: Starlette's redirect or 404
                await super().app(scope, receive, send)
                return
        scope.setdefault("router", self)
        scope["route"] = route
        scope.update(child)
        await route.handle(scope, receive, send)


def clock_route(clock: ManualClock, settle: Any) -> Route:
    """POST /_opencadence/clock {"advance": seconds} | {"set": iso}: admins, manual clock only.

    Answers only after ``settle(now)`` processed all work due by the new time, so a client
    can step through days of cadence deterministically.
    """

    def _backwards(why: str) -> errors.InvalidOperation:
        return errors.InvalidOperation(
            "the org's clock never moves backwards: it is "
            f"{values.format_datetime(clock.now())} and {why}"
        )

    async def move(request: Request) -> Response:
        org: Org = request.app.state.org
        # authenticated before the body is read, as every REST endpoint
        session = await run_in_threadpool(rest.session_of, request, org)
        body = await rest.read_json(request)

        def apply() -> dict[str, str]:
            if not session.is_admin:
                raise errors.InsufficientAccess("only an administrator can move the clock")
            if (
                "advance" in body
                and isinstance(body["advance"], (int, float))
                and not isinstance(body["advance"], bool)
            ):
                if body["advance"] < 0:
                    raise _backwards(f"advance is {body['advance']} seconds")
                now = _advance(clock, body["advance"])
            elif isinstance(body.get("set"), str):
                try:
                    target = values.parse_datetime(body["set"])
                except ValueError as exc:
                    raise errors.JsonParserError(str(exc)) from None
                try:
                    now = clock.set(target)
                except ValueError:
                    raise _backwards(f"{body['set']} is before it") from None
            else:
                raise errors.JsonParserError('expected {"advance": seconds} or {"set": "ISO-8601"}')
            if settle is not None:
                settle(now)
            return {"now": values.format_datetime(now)}

        return rest.json_response(await run_in_threadpool(apply))

    return Route("/_opencadence/clock", move, methods=["POST"])


def build_app(
    org: Org,
    *,
    manual_clock: ManualClock | None = None,
    settle: Any = None,
    tracker: Any = None,
    streaming_timeout: float = streaming.CONNECT_TIMEOUT,
    watch: health.Health | None = None,
    shared_streaming: bool = False,
) -> Starlette:
    """The API app of ``org``; with ``shared_streaming``, CometD clients live in the database,
    so that every server process on it answers every client (``serve --processes N``)."""
    routes = [
        Route("/services/data", list_versions, methods=["GET"]),
        Route("/services/data/", list_versions, methods=["GET"]),
        Route("/services/data/openapi.json", openapi_document, methods=["GET"]),
    ]
    routes += event_schemas.routes()  # before rest's /sobjects/{sobject}/{id}
    routes += conversion.routes()  # before rest's /sobjects/{sobject}/{field}/{value}
    routes += (
        rest.routes()
        + collections.routes()
        + actions.routes()
        + composite.routes()
        + email_settings.routes()
        + soap.routes()
        + search.routes()
        + oauth.routes()
        + identity.routes()
        + streaming.routes()
        + bulk2.routes()
        + bulk1.routes()
    )
    if manual_clock is not None:
        routes.append(clock_route(manual_clock, settle))
    if tracker is not None:
        routes += tracking.routes(tracker)
    routes.append(health.route(watch or health.Health(org.store)))
    app = _App(
        exception_handlers={
            errors.OpenCadenceError: api_errors.opencadence_error,
            404: api_errors.not_found,
            405: api_errors.method_not_allowed,
            Exception: api_errors.unexpected,  # CatchAll's
        },
    )
    app.router = _Router(routes)
    app.state.org = org
    # where each REST request's work runs: a worker thread, or the loop when short (SQLite)
    app.state.dispatch = api_dispatch.Dispatch(org.store)
    # describe's If-Modified-Since compares with this (api/rest.py metadata_unchanged)
    app.state.metadata_since = SystemClock().now().replace(microsecond=0)
    # the web app (sign-in, My Work) under /app, over the same Org
    app.router.routes.append(web_pages.mount(app.state, bodies.read))
    app.state.streaming = streaming.Streaming(
        org, connect_timeout=streaming_timeout, shared=shared_streaming
    )
    return app
