"""The API versions opencadence serves: 45.0 (Spring '19) to 67.0 (Summer '26)."""

from __future__ import annotations

from opencadence import errors

OLDEST, NEWEST = 45, 67
SEASONS = ("Spring", "Summer", "Winter")


def all_versions() -> list[dict[str, str]]:
    """``GET /services/data/``: every version with its release label."""
    out = []
    for major in range(OLDEST, NEWEST + 1):
        k = major - OLDEST
        year = 2019 + (k + 1) // 3
        out.append(
            {
                "label": f"{SEASONS[k % 3]} '{year % 100:02d}",
                "url": f"/services/data/v{major}.0",
                "version": f"{major}.0",
            }
        )
    return out


def check(version: str) -> str:
    """A served version string (``"59.0"``), or NOT_FOUND as Salesforce answers."""
    major, _, minor = version.partition(".")
    if not major.isdigit() or minor != "0" or not OLDEST <= int(major) <= NEWEST:
        raise errors.NotFound("The requested resource does not exist")
    return version
