"""``users``, ``apps`` and ``token``: who may call the API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from opencadence import system
from opencadence.cli import common


def _open(args: argparse.Namespace) -> system.System:
    return system.build(system.Settings(database_url=common.database_url(args), worker=False))


def cmd_users(args: argparse.Namespace) -> int:
    """Manage users and their credentials."""
    with _open(args) as built:
        accounts = built.org.accounts
        if args.action == "create":
            if not args.username or not args.password:
                print("users create needs --username and --password", file=sys.stderr)
                return 2
            for name in args.permission or ():
                accounts.permission_set_id(name)  # an unknown name fails before the user exists
            user_id, token = accounts.create_user(
                args.username, args.password, admin=bool(args.admin), time_zone=args.time_zone
            )
            _apply_grants(accounts, user_id, args)
            print(f"created user {args.username} ({user_id}); security token: {token}")
        elif args.action == "update":
            return _update(accounts, args)
        elif args.action == "list":
            for u in accounts.list_users():
                flags = ("admin " if u["is_admin"] else "") + (
                    "active" if u["IsActive"] else "inactive"
                )
                granted = " ".join(sorted(accounts.permissions_of(u["Id"])))
                print(
                    f"{u['Id']}  {u['Username']}  {u['TimeZoneSidKey']}  {flags}"
                    + (f"  {granted}" if granted else "")
                )
        elif args.action == "unlock":  # after too many invalid login attempts
            accounts.unlock(args.username)
            print(f"{args.username} unlocked")
        else:
            accounts.set_active(args.username, args.action == "activate")
            print(f"{args.username} {args.action}d")
    return 0


def _apply_grants(accounts: Any, user_id: str, args: argparse.Namespace) -> None:
    """--permission / --revoke-permission / --manager, for create and update."""
    for name in args.permission or ():
        accounts.grant(user_id, name)
    for name in getattr(args, "revoke_permission", None) or ():
        accounts.revoke_permission(user_id, name)
    if args.manager is not None:
        accounts.set_manager(user_id, args.manager)


def _update(accounts: Any, args: argparse.Namespace) -> int:
    """users update --username U [--permission P]... [--revoke-permission P]...
    [--manager M | --manager ''] [--admin | --no-admin]."""
    if not args.username:
        print("users update needs --username", file=sys.stderr)
        return 2
    user = accounts.find_user(args.username)
    if user is None:
        print(f"NOT_FOUND: no user {args.username}", file=sys.stderr)
        return 1
    for name in [*(args.permission or ()), *(args.revoke_permission or ())]:
        accounts.permission_set_id(name)  # every name checked before anything changes
    _apply_grants(accounts, user["Id"], args)
    if args.admin is not None:
        accounts.set_admin(user["Id"], args.admin)
    granted = ", ".join(sorted(accounts.permissions_of(user["Id"]))) or "none"
    print(f"updated {args.username}: permission sets {granted}")
    return 0


def cmd_apps(args: argparse.Namespace) -> int:
    """Create a connected app (client-credentials flow runs as --run-as)."""
    certificate = None
    if args.certificate:
        try:
            certificate = Path(args.certificate).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"INVALID_OPERATION: cannot read {args.certificate}: {exc}", file=sys.stderr)
            return 1
    with _open(args) as built:
        key, secret = built.org.accounts.create_app(
            args.name,
            args.run_as,
            callback_url="\n".join(args.callback_url) if args.callback_url else None,
            certificate=certificate,
            scopes=" ".join(args.scope) if args.scope else None,
        )
    print(f"consumer key:    {key}\nconsumer secret: {secret}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a fresh access token for a user (for scripts)."""
    with _open(args) as built:
        accounts = built.org.accounts
        user = accounts.find_user(args.username)
        if user is None:
            print(f"INVALID_LOGIN: no user {args.username}", file=sys.stderr)
            return 1
        print(accounts.open_session(user["Id"], client="cli"))
    return 0


def add_users(subparsers: Any) -> None:
    p = common.add_command(
        subparsers, "users", cmd_users, "create, list, activate, deactivate or unlock users"
    )
    p.add_argument(
        "action", choices=("create", "update", "list", "activate", "deactivate", "unlock")
    )
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument(
        "--admin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="sees and changes everything (View All Data, Modify All Data, Manage Users)",
    )
    p.add_argument(
        "--permission",
        action="append",
        metavar="PERMISSION_SET",
        help="grant a permission set by Name or Label, e.g. SalesEngagementCadenceCreator "
        "(may create and manage cadences and email templates); repeatable",
    )
    p.add_argument(
        "--revoke-permission",
        action="append",
        metavar="PERMISSION_SET",
        help="(update) remove a permission set; repeatable",
    )
    p.add_argument(
        "--manager",
        metavar="USERNAME",
        help="set User.ManagerId (the manager sees and acts on this user's records); '' clears it",
    )
    p.add_argument("--time-zone", default="GMT", help="TimeZoneSidKey, e.g. America/Los_Angeles")
    common.add_database(p)


def add_apps(subparsers: Any) -> None:
    p = common.add_command(
        subparsers, "apps", cmd_apps, "create a connected app (OAuth client credentials)"
    )
    p.add_argument("create", choices=("create",))
    p.add_argument("--name", required=True)
    p.add_argument("--run-as", required=True, help="username the client-credentials flow acts as")
    p.add_argument(
        "--callback-url",
        action="append",
        help="a callback URL of the web server flow (redirect_uri must equal one); repeatable",
    )
    p.add_argument(
        "--certificate",
        metavar="CERT_PEM",
        help="X.509 certificate (PEM) that verifies the JWT bearer flow's assertions",
    )
    p.add_argument(
        "--scope",
        action="append",
        help="an OAuth scope the app may grant; repeatable (default: api refresh_token offline_access)",
    )
    common.add_database(p)


def add_token(subparsers: Any) -> None:
    p = common.add_command(subparsers, "token", cmd_token, "print a fresh access token for a user")
    p.add_argument("--username", required=True)
    common.add_database(p)
