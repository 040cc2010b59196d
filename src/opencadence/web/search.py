"""Find a target: contacts and leads matched by SOSL (Salesforce's search syntax), through the
same ``Org.parameterized_search`` as ``/parameterizedSearch``, so a rep finds only what they
may see. The Contacts and Leads lists keep their own name/email filter (SOQL LIKE)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opencadence import errors
from opencadence.org import Org
from opencadence.storage import accounts
from opencadence.web import common

#: at most this many records a target search shows
SEARCH_LIMIT = 50
_TARGET_FIELDS = {
    "Contact": ["Id", "Name", "Title", "Account.Name", "Email", "Phone"],
    "Lead": ["Id", "Name", "Title", "Company", "Email", "Phone"],
}


def _found(org: Org, session: accounts.Session, q: str) -> tuple[list[dict[str, Any]], str]:
    """The matching targets as table rows, or the search's error message."""
    params = {
        "q": q,
        "sobjects": [{"name": n, "fields": f} for n, f in _TARGET_FIELDS.items()],
        "overallLimit": SEARCH_LIMIT,
    }
    try:
        result = org.parameterized_search(session, params, common.VERSION)
    except (errors.MalformedSearch, errors.InvalidSearch) as exc:
        return [], exc.message
    rows = []
    for r in result["searchRecords"]:
        kind = r["attributes"]["type"]
        company = r.get("Company") if kind == "Lead" else (r.get("Account") or {}).get("Name")
        rows.append(
            {
                "kind": kind,
                "id": r["Id"],
                "name": r.get("Name") or r["Id"],
                "title": r.get("Title") or "",
                "company": company or "",
                "email": r.get("Email") or "",
                "phone": r.get("Phone") or "",
            }
        )
    return rows, ""


async def find_targets(request: Request) -> Response:
    """``GET /app/search?q=``: the search page and its results."""
    org = common.org_of(request)
    who = await common.signed_in(request)
    if who is None:
        return common.to_login()
    q = request.query_params.get("q", "").strip()[:200]
    rows, error = await run_in_threadpool(_found, org, who.session, q) if q else ([], "")
    return common.render(
        "search.html",
        q=q,
        rows=rows,
        error=error,
        user_name=who.name,
        time_zone=who.session.time_zone,
        csrf=who.csrf,
    )
