"""Roles and what each may do. Viewers read; editors also write content, compose and send
editions and look after readers; owners also manage accounts, topics, erasure, settings and
complimentary paid access, and read the audit log. The one place this is decided: views ask
:func:`may`."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"


class Permission(StrEnum):
    READ = "read"                    # every admin page that only shows
    COMPOSE = "compose"              # drafts, previews, test sends
    SEND = "send"                    # send, schedule, pause, resume, cancel
    CONTENT = "content"              # syntheses: edit, publish, unpublish
    READERS = "readers"              # change a reader's topics, unsubscribe, suppress, import
    TOPICS = "topics"                # create, rename, reorder, mark premium
    ERASE = "erase"                  # erase a reader for good
    ACCOUNTS = "accounts"            # admin accounts and API tokens
    AUDIT = "audit"                  # read the audit log
    SETTINGS = "settings"            # see the settings in effect
    COMP = "comp"                    # grant and revoke complimentary paid access


_EDITOR = {Permission.READ, Permission.COMPOSE, Permission.SEND, Permission.CONTENT,
           Permission.READERS}
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.EDITOR: frozenset(_EDITOR),
    Role.OWNER: frozenset(Permission),
}
ROLES = tuple(r.value for r in Role)


def may(role: str, permission: Permission) -> bool:
    """Whether an admin with ``role`` may do what ``permission`` names (unknown role: no)."""
    try:
        return permission in GRANTS[Role(role)]
    except ValueError:
        return False
