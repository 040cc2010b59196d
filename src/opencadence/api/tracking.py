"""Open-tracking pixel and click redirect for cadence emails (signed tokens; a forged token
records nothing and redirects nowhere)."""

from __future__ import annotations

import base64

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opencadence.email import tracking

#: A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def routes(tracker: tracking.Tracker) -> list[Route]:
    async def opened(request: Request) -> Response:
        await run_in_threadpool(tracker.record_open, request.path_params["token"])
        return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})

    async def clicked(request: Request) -> Response:
        url = await run_in_threadpool(tracker.record_click, request.path_params["token"])
        if url is None:
            return Response("unknown link", status_code=404, media_type="text/plain")
        return RedirectResponse(url, status_code=302)

    return [
        Route("/email/o/{token}", opened, methods=["GET"]),
        Route("/email/c/{token}", clicked, methods=["GET"]),
    ]
