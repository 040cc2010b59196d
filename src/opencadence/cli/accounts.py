"""``users``, ``apps`` and ``token``: who may call the API."""

from __future__ import annotations

import argparse
import sys
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
            user_id, token = accounts.create_user(
                args.username, args.password, admin=args.admin, time_zone=args.time_zone
            )
            print(f"created user {args.username} ({user_id}); security token: {token}")
        elif args.action == "list":
            for u in accounts.list_users():
                flags = ("admin " if u["is_admin"] else "") + (
                    "active" if u["IsActive"] else "inactive"
                )
                print(f"{u['Id']}  {u['Username']}  {u['TimeZoneSidKey']}  {flags}")
        elif args.action == "unlock":  # after too many invalid login attempts
            accounts.unlock(args.username)
            print(f"{args.username} unlocked")
        else:
            accounts.set_active(args.username, args.action == "activate")
            print(f"{args.username} {args.action}d")
    return 0


def cmd_apps(args: argparse.Namespace) -> int:
    """Create a connected app (client-credentials flow runs as --run-as)."""
    with _open(args) as built:
        key, secret = built.org.accounts.create_app(args.name, args.run_as)
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
    p.add_argument("action", choices=("create", "list", "activate", "deactivate", "unlock"))
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument(
        "--admin", action="store_true", help="sees and changes everything (View All Data)"
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
    common.add_database(p)


def add_token(subparsers: Any) -> None:
    p = common.add_command(subparsers, "token", cmd_token, "print a fresh access token for a user")
    p.add_argument("--username", required=True)
    common.add_database(p)
