"""What must hold before an automated email is handed to the relay, each failure one ErrorCode.

Order: org settings, assignee, template, target, rendering, then the daily caps (last, so
only a send that would really go out takes a place under a cap). All reads use the worker's
transaction, so they see what the transition sees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opencadence import errors, ids
from opencadence.email import settings, templates
from opencadence.metadata import sales_engagement
from opencadence.metadata.sales_engagement import TARGET_OBJECTS
from opencadence.storage import mail, records

#: Folder AccessType values whose templates any user may send. Hidden folders are nobody's;
#: a template filed in a user's personal folder (FolderId a User Id) is that user's only.
PUBLIC_FOLDERS = sales_engagement.PUBLIC_FOLDER_ACCESS

# RFC 5321/5322 "dot-atom" addresses, stricter than storage's check: no leading, trailing or
# doubled dots, labels without edge hyphens, a letter TLD, the 64/254 length limits.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class SendRefused(errors.OpenCadenceError):
    """An automated email cannot be sent; ``code`` is the step's ErrorCode."""

    def __init__(self, message: str, code: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_at = retry_at


class Cache:
    """Reads shared by the sends of one worker batch (one transaction): settings, the
    assignee, templates, folders and the cap counts, each read once."""

    def __init__(self, store: records.Store, conn: mail.Connection) -> None:
        self.store, self.conn = store, conn
        self.outbox = mail.outbox(store.meta)
        self._records: dict[tuple[str, str, bool], dict[str, Any] | None] = {}
        self._settings: settings.Snapshot | None = None
        self._used: dict[tuple[str, str], int] = {}
        self._any_waiting: bool | None = None

    def prefetch(self, obj: str, record_ids: list[str]) -> None:
        """Read the live records ``record_ids`` of ``obj`` in one statement, for ``record``
        (those not found are remembered as missing)."""
        todo = [i for i in record_ids if (obj, i, False) not in self._records]
        if todo:
            found = records.read_records(self.store, self.conn, obj, todo)
            for i in todo:
                self._records[(obj, i, False)] = found.get(ids.parse(i))

    @property
    def settings(self) -> settings.Snapshot:
        if self._settings is None:
            self._settings = settings.load(self.conn)
        return self._settings

    def record(
        self, obj: str, record_id: str, include_deleted: bool = False
    ) -> dict[str, Any] | None:
        k = (obj, record_id, include_deleted)
        if k not in self._records:
            self._records[k] = records.read_record(
                self.store, self.conn, obj, record_id, include_deleted=include_deleted
            )
        return self._records[k]

    def used(self, day: str, owner_id: str | None) -> int:
        """Sends admitted on ``day`` (by ``owner_id``, or org-wide for None)."""
        k = (day, owner_id or "")
        if k not in self._used:
            self._used[k] = self.outbox.admitted(self.conn, day, owner_id)
        return self._used[k]

    def admitted(self, day: str, owner_id: str) -> None:
        for k in ((day, ""), (day, owner_id)):
            if k in self._used:
                self._used[k] += 1

    def any_waiting(self) -> bool:
        if self._any_waiting is None:
            self._any_waiting = self.outbox.any_waiting(self.conn)
        return self._any_waiting


def valid_address(address: str | None) -> bool:
    if not address or len(address) > 254 or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    labels = domain.split(".")
    return (
        len(local) <= 64
        and bool(_LOCAL.match(local))
        and len(labels) >= 2
        and all(_LABEL.match(lb) for lb in labels)
        and labels[-1].isalpha()
        and len(labels[-1]) >= 2
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A send that passed every check, rendered."""

    sender: str
    sender_name: str | None
    recipient: str
    rendered: templates.Rendered
    target: Mapping[str, Any]
    user: Mapping[str, Any]


def prepare(
    cache: Cache,
    *,
    auto: bool,
    template_id: str | None,
    owner_id: str,
    target_id: str,
    composed: templates.Rendered | None = None,
) -> Prepared:
    """Run every check but the caps and render; raise SendRefused with the ErrorCode.
    ``composed``: a rep's own email (a manual step's composer), sent as written: no template
    is read, its text is checked as a rendered one is (size, encoding)."""
    store = cache.store
    org = cache.settings.org
    if not org.email_enabled:
        raise SendRefused("Email is turned off for the org", "EMAIL_ORG_SETTING_OFF")
    if auto and not org.auto_email_enabled:
        raise SendRefused("Automated email is turned off for the org", "AUTO_EMAIL_ORG_SETTING_OFF")
    user = cache.record("User", owner_id)
    if user is None or not user.get("IsActive"):
        raise SendRefused(f"The assignee {owner_id} is inactive", "USER_IS_INACTIVE")
    if not cache.settings.user(owner_id, "hvs_access"):
        raise SendRefused(
            f"The assignee {owner_id} lost Sales Engagement access", "USER_HAS_LOST_HVS_ACCESS"
        )
    sender = user.get("SenderEmail") or user.get("Email")
    if not valid_address(sender):
        raise SendRefused(
            f"The assignee's sender address {sender!r} is not valid", "INVALID_USER_EMAIL"
        )
    template = (
        _template(cache, template_id, owner_id)
        if composed is None
        else {"Subject": composed.subject, "Body": composed.text, "HtmlValue": composed.html}
    )
    target = _target(cache, target_id)
    values = {TARGET_OBJECTS[target_id[:3]]: target, "User": user}
    try:
        rendered = templates.render(
            template, store.registry, values, org.max_body_bytes, merge=composed is None
        )
    except templates.TemplateError as exc:
        raise SendRefused(exc.message, exc.code) from exc
    return Prepared(
        str(sender),
        user.get("SenderName") or user.get("Name"),
        target["Email"],
        rendered,
        target,
        user,
    )


def _template(cache: Cache, template_id: str | None, owner_id: str) -> dict[str, Any]:
    reg = cache.store.registry
    if not template_id or not reg.is_id_of(template_id, "EmailTemplate"):
        raise SendRefused(f"{template_id!r} is not an email template Id", "INVALID_TEMPLATE_ID")
    template = cache.record("EmailTemplate", template_id, include_deleted=True)
    if template is None:
        raise SendRefused(f"No email template {template_id}", "INVALID_TEMPLATE_ID")
    if template["IsDeleted"]:
        raise SendRefused(f"The email template {template_id} was deleted", "TEMPLATE_DELETED")
    if not template.get("IsActive"):
        raise SendRefused(
            f"The email template {template_id} is not available for use", "TEMPLATE_NOT_PUBLIC"
        )
    folder_id = template.get("FolderId")
    in_user_folder = reg.is_id_of(folder_id, "User")
    if folder_id and in_user_folder and folder_id != owner_id:
        raise SendRefused(
            f"The email template {template_id} is in another user's folder", "TEMPLATE_NOT_PUBLIC"
        )
    if folder_id and not in_user_folder and not reg.is_id_of(folder_id, "Organization"):
        folder = cache.record("Folder", folder_id)
        if folder is None or folder.get("AccessType") not in PUBLIC_FOLDERS:
            raise SendRefused(
                f"The email template {template_id} is in a folder the assignee cannot use",
                "TEMPLATE_NOT_PUBLIC",
            )
    return template


def _target(cache: Cache, target_id: str) -> dict[str, Any]:
    obj = TARGET_OBJECTS.get(target_id[:3])
    target = None if obj is None else cache.record(obj, target_id)
    if target is None:  # deleted (in the recycle bin): nobody's to see
        raise SendRefused(f"The assignee cannot see the target {target_id}", "NO_TARGET_ACCESS")
    email = target.get("Email")
    if not email:
        raise SendRefused("The target has no email address", "TARGET_EMAIL_EMPTY")
    if not valid_address(email):
        raise SendRefused(f"The target's email {email!r} is not valid", "INVALID_TARGET_EMAIL")
    if target.get("HasOptedOutOfEmail"):
        raise SendRefused("The target opted out of email", "TARGET_DO_NOT_CONTACT_ON")
    if target.get("EmailBouncedDate") is not None:
        raise SendRefused("The target's email address bounced", "TARGET_EMAIL_BOUNCED")
    return target


# -- daily caps --------------------------------------------------------------------------------


def day_of(now: datetime) -> str:
    """Caps count per UTC day (the org's day; one boundary for every user)."""
    return now.strftime("%Y-%m-%d")


def next_day(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day) + timedelta(days=1)


def check_caps(
    cache: Cache, now: datetime, owner_id: str, key: str, enrolled_at: datetime | None
) -> None:
    """Raise SendRefused (with a retry time: the step waits) when a daily cap is reached;
    else take a place under each cap.

    A place is taken by every send admitted today (an outbox row with ``cap_day`` = today).
    Waiting sends enrolled earlier keep their priority: a send is only admitted if the places
    left exceed the earlier-enrolled sends still waiting, so overflow goes out the next day
    oldest-enrolled first, whatever order the worker wakes them in.
    """
    org = cache.settings.org
    today = day_of(now)
    user_cap = cache.settings.user(owner_id, "user_daily_auto_cap")
    for code, cap, scope in (
        ("ORG_WIDE_DAILY_EMAIL_LIMIT_REACHED", org.org_daily_email_cap, None),
        ("ORG_WIDE_AUTO_EMAIL_LIMIT_REACHED", org.org_daily_auto_cap, None),
        ("AUTO_EMAIL_DAILY_LIMIT_REACHED", user_cap, owner_id),
    ):
        ahead = 0
        if cache.any_waiting():
            ahead = cache.outbox.waiting_ahead(cache.conn, key, enrolled_at, scope)
        if cache.used(today, scope) + ahead >= cap:
            raise SendRefused(f"Daily cap of {cap} reached", code, next_day(now))
    cache.admitted(today, owner_id)
