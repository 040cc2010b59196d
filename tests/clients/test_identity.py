"""The identity URL every token response names as ``id`` and the version's resources list as
``identity`` (where jsforce's ``identity()`` and the sf CLI look), through a real server."""

from __future__ import annotations

from .conftest import Server
from .test_simple_salesforce import by_session

V = "/services/data/v59.0"


def _get(server: Server, url: str, token: str | None = None, **params: str):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return server.session().get(url, headers=headers, params=params)


def test_the_identity_url_describes_the_token_s_user(server: Server) -> None:
    sf = by_session(server)
    listed = sf.restful("")["identity"]
    me = server.org.accounts.find_user(server.admin)
    assert me is not None
    assert listed == f"https://{server.instance}/id/00D0C0000000001UAA/{me['Id']}"
    r = _get(server, listed, sf.session_id)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == listed and body["asserted_user"] is True
    assert body["user_id"] == me["Id"] and body["organization_id"] == "00D0C0000000001UAA"
    assert body["username"] == server.admin and body["active"] is True
    assert body["timezone"] == "America/Los_Angeles" and body["utcOffset"] in (-28800000, -25200000)
    assert body["urls"]["rest"] == f"https://{server.instance}/services/data/v{{version}}/"
    versioned = _get(server, listed, sf.session_id, version="59.0").json()
    assert versioned["urls"]["query"] == f"https://{server.instance}{V}/query/"
    by_param = _get(server, listed, None, oauth_token=sf.session_id)
    assert by_param.status_code == 200 and by_param.json()["user_id"] == me["Id"]


def test_a_rep_reads_only_their_own_identity_and_bad_tokens_are_refused(server: Server) -> None:
    accounts = server.org.accounts
    rep_id, _ = accounts.create_user("rep@oc.test", "pw-rep-1")
    rep_token = accounts.open_session(rep_id)
    admin = accounts.find_user(server.admin)
    assert admin is not None
    base = f"https://{server.instance}/id/00D0C0000000001UAA"
    r = _get(server, f"{base}/{admin['Id']}", rep_token)
    assert (r.status_code, r.text) == (403, "Bad_Id")
    admin_token = accounts.open_session(admin["Id"])
    seen = _get(server, f"{base}/{rep_id}", admin_token)
    assert seen.status_code == 200 and seen.json()["asserted_user"] is False
    for token in ("nonsense", None):
        r = _get(server, f"{base}/{rep_id}", token)
        assert (r.status_code, r.text) == (403, "Bad_OAuth_Token")
    r = _get(server, f"{base}/not-an-id", admin_token)
    assert (r.status_code, r.text) == (403, "Bad_Id")
