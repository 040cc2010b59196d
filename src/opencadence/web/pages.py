"""The web app's routes: sign-in, My Work (``work``), targets (``targets``), finding a
target (``search``), live updates (``live``) and the static assets (``assets``)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from opencadence.web import assets, auth, common, dashboard, live, search, targets, work
from opencadence.web import login as login_form
from opencadence.web.common import BodyReader

#: the answer to any failed sign-in: it does not say whether the user exists
LOGIN_FAILED = login_form.FAILED


# --- sign-in ------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    return _login_form(request, error=None, username="")


def _login_form(request: Request, error: str | None, username: str, status: int = 200) -> Response:
    token = auth.new_login_token()
    response = login_form.page(  # the OAuth authorization page's form too (web/login.py)
        "login.html",
        action="/app/login",
        hidden=[("csrf", token)],
        username=username,
        error=error,
        status=status,
    )
    auth.set_cookie(response, request, auth.LOGIN_COOKIE, token)
    return response


async def login(request: Request) -> Response:
    org = common.org_of(request)
    form = await common.form(request)
    if not auth.login_token_ok(request, form.get("csrf")):
        return common.refused()
    username, password = form.get("username", ""), form.get("password", "")

    def sign_in() -> str | None:
        user_id = login_form.check(org, username, password)
        return None if user_id is None else org.accounts.open_session(user_id, client="web")

    token = await run_in_threadpool(sign_in)
    if token is None:
        return _login_form(request, LOGIN_FAILED, username, status=401)
    response = RedirectResponse("/app/work", status_code=303)
    auth.set_cookie(response, request, auth.SESSION_COOKIE, token)
    response.delete_cookie(auth.LOGIN_COOKIE, path="/app")
    return response


async def logout(request: Request) -> Response:
    org = common.org_of(request)
    form = await common.form(request)
    found = await run_in_threadpool(auth.current, request, org)
    if found is None:
        return common.to_login()
    token, _ = found
    if not auth.csrf_ok(org, token, form.get("csrf")):
        return common.refused()
    await run_in_threadpool(org.accounts.revoke, token)
    response = common.to_login()
    response.delete_cookie(auth.SESSION_COOKIE, path="/app")
    return response


async def home(request: Request) -> Response:
    return RedirectResponse("/app/work", status_code=303)


def builder_routes() -> list[Route]:
    """The cadence builder and its email templates (``builder``, ``builder_templates``)."""
    from opencadence.web import builder as b  # noqa: PLC0415 (kept apart from the imports above)
    from opencadence.web import builder_templates as t  # noqa: PLC0415

    return [
        Route("/cadences", b.cadences, methods=["GET"]),
        Route("/cadences", b.create_cadence, methods=["POST"]),
        Route("/cadences/import", b.import_cadence, methods=["POST"]),
        Route("/cadences/{cadence}", b.cadence_page, methods=["GET"]),
        Route("/cadences/{cadence}/export", b.export_cadence, methods=["GET"]),
        Route("/cadences/{cadence}/{action}", b.cadence_action, methods=["POST"]),
        Route("/templates", t.template_list, methods=["GET"]),
        Route("/templates", t.create_template, methods=["POST"]),
        Route("/templates/{template}", t.template_page, methods=["GET"]),
        Route("/templates/{template}", t.save_template, methods=["POST"]),
    ]


def mount(app_state: Any, read_body: BodyReader) -> Mount:
    """The app's routes, mounted at /app; ``read_body`` bounds request bodies."""
    app_state.web_read_body = read_body
    return Mount(
        "/app",
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/work", work.my_work, methods=["GET"]),
            Route("/work/events", live.events_stream, methods=["GET"]),
            Route("/work/{step}/email", work.email_page, methods=["GET"]),
            Route("/work/{step}/email", work.send_email, methods=["POST"]),
            Route("/work/{step}/{action}", work.step_action, methods=["POST"]),
            Route("/contacts", targets.contacts, methods=["GET"]),
            Route("/leads", targets.leads, methods=["GET"]),
            Route("/targets/enroll", targets.enroll, methods=["POST"]),
            Route("/targets/{target}", targets.target_page, methods=["GET"]),
            Route("/search", search.find_targets, methods=["GET"]),
            Route("/dashboard", dashboard.dashboard_page, methods=["GET"]),
            Route("/dashboard/{table}.csv", dashboard.dashboard_csv, methods=["GET"]),
            *builder_routes(),
            Route("/static/{digest}/{path:path}", assets.serve, methods=["GET", "HEAD"]),
        ],
    )
