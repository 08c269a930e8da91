"""Who runs a command, as the audit log names them: ``command line (user@host)``.

The operating-system account and host are what a command can know of its runner; an
account shared by several people (``sudo -u newsletter``) names the account, and
``SUDO_USER`` is kept too when sudo set it, so the person behind it is still named.
"""

from __future__ import annotations

import getpass
import os
import socket

from newsletter.accounts import audit

PREFIX = "command line"


def _runner() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    sudo = os.environ.get("SUDO_USER")
    if sudo and sudo != user:
        user = f"{sudo} as {user}"
    return f"{user}@{socket.gethostname() or 'localhost'}"


def command_actor() -> audit.AdminActor:
    """The person at the command line: no admin account, no IP address."""
    return audit.AdminActor(admin_id=None, name=f"{PREFIX} ({_runner()})")


def record(action: str, target: str = "", *, commit: bool = True, **detail) -> None:
    """Audit what this command did: in its own commit (the change was committed already),
    or with ``commit=False`` in the command's transaction, committed by the command."""
    audit.record(command_actor(), action, target, detail, commit=commit)
