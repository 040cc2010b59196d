"""Who may change what: the object-level permissions and the principal a write runs as.

``records.Tx`` asks these when it writes in API mode on behalf of a ``Principal`` (a signed-in
user; ``Org`` passes the session's), so every protocol above inherits the same answers.
Record-level rules (which rows a user sees and may edit) are in ``storage/visibility.py``;
the whole model is described in docs/security-model.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opencadence import errors, ids
from opencadence.metadata.registry import default_registry

#: The permission set that lets a user create and manage cadences and email templates
#: (Salesforce's "Sales Engagement Cadence Creator"); seeded by storage/migrate.py.
CADENCE_CREATOR = "SalesEngagementCadenceCreator"
CADENCE_CREATOR_LABEL = "Sales Engagement Cadence Creator"
#: Its fixed Id, the same in every org opencadence creates.
CADENCE_CREATOR_ID = ids.make_id(default_registry().prefix("PermissionSet"), 1)
#: Every permission set the upgrade seeds: Id -> (Name, Label, Description).
PERMISSION_SETS: Mapping[str, tuple[str, str, str]] = {
    CADENCE_CREATOR_ID: (
        CADENCE_CREATOR,
        CADENCE_CREATOR_LABEL,
        "Create, edit, activate and delete cadences, their steps and rules, and email templates.",
    ),
}

#: The two profiles every org has (seeded by storage/migrate.py), with fixed Ids: administrators
#: have the first, everyone else the second (User.ProfileId's default). Id -> (Name, Description).
ADMIN_PROFILE_ID = ids.make_id(default_registry().prefix("Profile"), 1)
STANDARD_PROFILE_ID = ids.make_id(default_registry().prefix("Profile"), 2)
PROFILES: Mapping[str, tuple[str, str]] = {
    ADMIN_PROFILE_ID: ("System Administrator", "Sees and changes everything."),
    STANDARD_PROFILE_ID: ("Standard User", "Sees and changes what they own or share."),
}

#: The objects that define cadences: changed only by cadence creators (and administrators).
CADENCE_DEFINITION_OBJECTS = frozenset(
    {
        "ActionCadence",
        "ActionCadenceStep",
        "ActionCadenceRule",
        "ActionCadenceRuleCondition",
        "ActionCadenceStepVariant",
        "EmailTemplate",
        "CallTemplate",
    }
)
#: The objects only administrators ("Manage Users") change.
ADMIN_OBJECTS = frozenset(
    {"User", "PermissionSet", "PermissionSetAssignment", "Organization", "Profile"}
)
#: The User fields a user may change on their own record (personal settings).
SELF_SERVICE_USER_FIELDS = frozenset(
    {
        "FirstName",
        "LastName",
        "Alias",
        "Title",
        "Phone",
        "Signature",
        "SenderEmail",
        "SenderName",
        "TimeZoneSidKey",
        "LocaleSidKey",
        "LanguageLocaleKey",
        "EmailEncodingKey",
    }
)


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user a write is checked for."""

    user_id: str
    #: "View All Data" and "Modify All Data": sees and changes every record
    admin: bool = False
    #: names of the permission sets assigned to the user
    permission_sets: frozenset[str] = frozenset()

    @property
    def cadence_creator(self) -> bool:
        return self.admin or CADENCE_CREATOR in self.permission_sets

    @property
    def viewer(self) -> str | None:
        """Whose visibility limits what this principal reads (None: everything)."""
        return None if self.admin else self.user_id


def _refuse(object_name: str, why: str) -> errors.InsufficientAccessOnRecord:
    return errors.InsufficientAccessOnRecord(
        f"insufficient access rights on object id: {why} ({object_name})"
    )


def check_object(principal: Principal, object_name: str, call: str) -> None:
    """INSUFFICIENT_ACCESS_OR_READONLY when ``principal`` may not ``call`` (create, update,
    delete, undelete) records of ``object_name`` at all."""
    if principal.admin:
        return
    if object_name in CADENCE_DEFINITION_OBJECTS and not principal.cadence_creator:
        raise _refuse(object_name, f"the {CADENCE_CREATOR_LABEL} permission is required")
    if object_name in ADMIN_OBJECTS and not (object_name == "User" and call == "update"):
        raise _refuse(object_name, "only an administrator can change it")


def check_user_update(principal: Principal, record_id: str, changes: Mapping[str, Any]) -> None:
    """A non-administrator changes only their own User record, and only personal fields."""
    if principal.admin:
        return
    if record_id != principal.user_id:
        raise _refuse("User", "only an administrator can change another user")
    locked = sorted(k for k in changes if k not in SELF_SERVICE_USER_FIELDS)
    if locked:
        raise errors.InsufficientAccessOnRecord(
            f"insufficient access rights on object id: only an administrator can change "
            f"{', '.join(locked)}",
            fields=locked,
        )
