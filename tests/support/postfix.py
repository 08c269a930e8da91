"""A private Postfix for tests: a real MTA on 127.0.0.1, delivering into Maildirs.

``PostfixServer(root, users=[...])`` writes a complete Postfix instance under ``root``
(its own ``config_directory``, ``queue_directory`` and ``data_directory``; nothing in
``/etc/postfix``, ``/var/spool/postfix`` or ``/var/lib/postfix`` is read or changed) whose
only listener is an ``smtpd`` on ``127.0.0.1:<free port>``, so several instances and the
system's own can run side by side. Every message is delivered by Postfix's ``virtual(8)``
agent into Maildirs under ``root/mail`` (no Unix users):

* ``inbox.example``: the listed users, each ``user@inbox.example`` →
  ``mail/inbox.example/user/``. Any other address is refused at RCPT with ``550 5.1.1``
  (``reject_unlisted_recipient``, for this domain only).
* ``late.example``: every recipient is accepted at SMTP time; the virtual agent then
  bounces the unknown ones ("unknown user", ``5.1.1``) and Postfix sends its own DSN
  (``multipart/report; report-type=delivery-status``) to the envelope sender.
* ``bounces.example``: a catch-all — every address (``bounces+anything@bounces.example``)
  lands in the one :attr:`~PostfixServer.bounce_maildir`.

The domains are ``.example`` ones (RFC 2606), not ``.test``: the product validates addresses
as a real sign-up form must, and refuses special-use names such as ``.test``. Mail for any
other domain is bounced at once (``default_transport = error``): nothing leaves the machine.
The maps are ``texthash:`` (no ``postmap``); :meth:`~PostfixServer.add_users` rewrites
them and reloads.

What a private instance needs, found the hard way: root (the master runs as root, the
daemons as ``mail_owner`` ``postfix``; as root no ``alternate_config_directories`` entry
is needed), a root-owned queue directory (``postfix start`` creates its subdirectories), a
``data_directory`` owned by ``postfix``, ``maillog_file_prefixes`` covering the log file
(else ``postfix`` exits 1 without a word on a non-terminal), folders the ``postfix`` user
can enter (so not pytest's 0700 ``tmp_path``), and a ``pickup`` service (``postqueue``
takes its socket as the sign that the mail system is up). :func:`why_no_postfix` says what
is missing here.

``start()`` / ``stop()`` run the real ``postfix -c DIR start|stop`` (stopped: connections
are refused), ``flush()`` is ``postqueue -f``, ``wait_for(maildir, n, timeout)`` polls a
Maildir, ``close()`` stops it and kills, by pid, any of its processes still alive (found by
their working directory, the private queue directory), so a failed test leaves nothing
running. ``running_postfix(...)`` is the context manager (temporary folder included), and
the ``postfix_server`` fixture gives one instance per test module.
"""

from __future__ import annotations

import email
import email.policy
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from email.message import EmailMessage
from pathlib import Path

import pytest

HOST = "127.0.0.1"
INBOX_DOMAIN = "inbox.example"
LATE_DOMAIN = "late.example"
BOUNCE_DOMAIN = "bounces.example"
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
COMMAND_TIMEOUT = 60.0

# One line per service: name, type, private, unpriv, chroot, wakeup, maxproc, command.
# Only the smtpd is reachable from outside the instance (a TCP port on loopback); every
# other service is a socket inside the private queue directory (pickup is there because
# postqueue takes its socket as the sign that the mail system is up). No chroot: the instance
# lives in a temporary folder that a chroot would not contain.
_MASTER_CF = """\
{smtp_address} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def why_no_postfix() -> str | None:
    """Why a private Postfix cannot run on this machine (None: it can)."""
    for program in ("postfix", "postconf", "postqueue"):
        if shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return (f"`{program}` is missing: install Postfix (`make mta-deps` as root, or "
                    "`apt-get install postfix swaks`)")
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master process runs as root)"
    try:
        pwd.getpwnam(MAIL_OWNER)
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        return f"the `{MAIL_OWNER}` user or the `{SETGID_GROUP}` group is missing"
    return None


def _program(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} not found")
    return found


def _ip_from_proc(hex_address: str) -> str:
    """An address as /proc/net/tcp writes it (little-endian hex) in dotted or colon form."""
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def read_maildir(maildir: Path) -> list[EmailMessage]:
    """Every message of a Maildir (``new/`` and ``cur/``), in delivery order."""
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in maildir_files(maildir)]


def maildir_files(maildir: Path) -> list[Path]:
    """The message files of a Maildir (``new/`` and ``cur/``), oldest first.

    A Maildir file name starts with the delivery time in seconds, then a unique part; the
    modification time orders files within a second well enough for a test's messages.
    """
    files = [path for sub in ("new", "cur") if (maildir / sub).is_dir()
             for path in (maildir / sub).iterdir() if path.is_file()]
    return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name))


class PostfixError(RuntimeError):
    """A Postfix command failed; the message holds its output and the log's tail."""


class PostfixServer:
    """One private Postfix instance under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, *, users: Iterable[str] = ("alice", "bob"),
                 late_users: Iterable[str] = (), port: int | None = None) -> None:
        self.root = Path(root)
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "spool"
        self.data_dir = self.root / "data"
        self.mail_base = self.root / "mail"
        self.log_path = self.root / "maillog"
        self.port = port or free_port()
        self.users = list(dict.fromkeys(users))
        self.late_users = list(dict.fromkeys(late_users))
        self._owner = pwd.getpwnam(MAIL_OWNER)
        self._write_instance()

    # -- addresses and mailboxes ----------------------------------------------------------

    @property
    def smtp_url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    @property
    def bounce_maildir(self) -> Path:
        """The catch-all Maildir of every ``…@bounces.example`` address."""
        return self.mail_base / BOUNCE_DOMAIN / "bounces"

    def maildir(self, user: str, domain: str = INBOX_DOMAIN) -> Path:
        """The Maildir of ``user@domain`` (``user`` may also be a whole address)."""
        if "@" in user:
            user, domain = user.split("@", 1)
        return self.mail_base / domain / user

    def messages(self, user: str, domain: str = INBOX_DOMAIN) -> list[EmailMessage]:
        """What ``user@domain`` (or the address ``user``) has received, oldest first."""
        return read_maildir(self.maildir(user, domain))

    def bounces(self) -> list[EmailMessage]:
        return read_maildir(self.bounce_maildir)

    def wait_for(self, maildir: Path | str, n: int = 1, timeout: float = 30.0,
                 ) -> list[EmailMessage]:
        """Poll ``maildir`` (a path, a user of inbox.example or an address) until it holds at
        least ``n`` messages, and return them; AssertionError (with the log's tail) after
        ``timeout`` seconds."""
        path = maildir if isinstance(maildir, Path) else self.maildir(maildir)
        deadline = time.monotonic() + timeout
        while True:
            files = maildir_files(path)
            if len(files) >= n:
                return read_maildir(path)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{path} holds {len(files)} message(s) after {timeout:g} s, expected "
                    f"{n}\n--- queue ---\n{self.queue_listing()}\n--- maillog ---\n"
                    f"{self.log_tail()}")
            time.sleep(0.05)

    # -- running it -----------------------------------------------------------------------

    def start(self) -> None:
        """``postfix start``, then wait until the SMTP port accepts connections."""
        self._postfix("start")
        self._wait_port(listening=True)

    def stop(self) -> None:
        """``postfix stop`` (the master and its daemons exit), then wait until the SMTP port
        refuses connections."""
        self._postfix("stop")
        self._wait_port(listening=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """``postfix reload``: daemons re-read main.cf and the maps (after :meth:`add_users`)."""
        self._postfix("reload")

    def is_running(self) -> bool:
        """``postfix status`` says the master runs."""
        result = subprocess.run([_program("postfix"), "-c", str(self.config_dir), "status"],
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                check=False)
        return result.returncode == 0

    def flush(self) -> None:
        """``postqueue -f``: attempt to deliver everything queued now."""
        self._run([_program("postqueue"), "-c", str(self.config_dir), "-f"])

    def queue_listing(self) -> str:
        """``postqueue -p`` (what is still queued), for failure messages."""
        result = subprocess.run([_program("postqueue"), "-c", str(self.config_dir), "-p"],
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                check=False)
        return (result.stdout + result.stderr).strip()

    def add_users(self, users: Iterable[str]) -> None:
        """List more ``inbox.example`` users (their Maildirs made now) and reload."""
        self.users.extend(user for user in users if user not in self.users)
        self._write_maps()
        self._make_maildirs()
        if self.is_running():
            self.reload()

    def close(self) -> None:
        """Stop the instance whatever state it is in; kill, by pid, any of its processes
        that outlived ``postfix stop``. Safe to call twice."""
        if self.is_running():
            with suppress(PostfixError):
                self._postfix("stop")
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> PostfixServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def listening_addresses(self) -> set[tuple[str, int]]:
        """Every TCP address (host, port) on which a process of this instance listens."""
        inodes = set()
        for pid in self.pids():
            try:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except OSError:
                continue
        found = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: LISTEN
                    host_hex, port_hex = local.rsplit(":", 1)
                    found.add((_ip_from_proc(host_hex), int(port_hex, 16)))
        return found

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no maillog)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- internals ------------------------------------------------------------------------

    def _main_cf(self) -> dict[str, str]:
        base = str(self.mail_base)
        conf = str(self.config_dir)
        return {
            "compatibility_level": "3.6",
            "config_directory": conf,
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.root),
            "myhostname": "mta.test",
            "mydomain": "mta.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP private test instance",
            "biff": "no",
            # Nothing leaves the machine: mail for any domain but ours is bounced at once.
            "default_transport": "error:5.1.2 this test MTA delivers only to its own domains",
            "relay_transport": "error:5.1.2 this test MTA delivers only to its own domains",
            "virtual_mailbox_domains": f"{INBOX_DOMAIN}, {LATE_DOMAIN}, {BOUNCE_DOMAIN}",
            "virtual_mailbox_base": base,
            "virtual_mailbox_maps": f"texthash:{conf}/virtual_mailboxes",
            "virtual_uid_maps": f"static:{self._owner.pw_uid}",
            "virtual_gid_maps": f"static:{self._owner.pw_gid}",
            "virtual_minimum_uid": str(min(100, self._owner.pw_uid)),
            # Unknown inbox.example users are refused at RCPT; late.example accepts everyone
            # and bounces the unknown ones afterwards (a DSN, as a relay does).
            "smtpd_reject_unlisted_recipient": "no",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions":
                f"check_recipient_access texthash:{conf}/recipient_checks",
            "unknown_virtual_mailbox_reject_code": "550",
            # Accept as fast as the tests send; no address verification probes.
            "in_flow_delay": "0",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "smtpd_junk_command_limit": "100000",
            "smtpd_recipient_limit": "10000",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "notify_classes": "",
            "delay_warning_time": "0",
            "recipient_delimiter": "+",
        }

    def _write_instance(self) -> None:
        # What Postfix checks at start: root owns the configuration and the queue directory
        # (whose subdirectories ``postfix start`` creates), mail_owner owns data_directory.
        for path in (self.root, self.config_dir, self.queue_dir, self.mail_base):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)  # the daemons (user postfix) read the maps and the Maildirs
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data_dir, self._owner.pw_uid, self._owner.pw_gid)
        master = _MASTER_CF.format(smtp_address=f"{HOST}:{self.port}")
        (self.config_dir / "master.cf").write_text(master)
        (self.config_dir / "main.cf").write_text(
            "".join(f"{key} = {value}\n" for key, value in self._main_cf().items()))
        (self.config_dir / "recipient_checks").write_text(
            f"{INBOX_DOMAIN} reject_unlisted_recipient\n"
            f"{BOUNCE_DOMAIN} reject_unlisted_recipient\n")
        self._write_maps()
        self._make_maildirs()
        for path in self.config_dir.iterdir():
            path.chmod(0o644)

    def _write_maps(self) -> None:
        lines = [f"{user}@{INBOX_DOMAIN} {INBOX_DOMAIN}/{user}/" for user in self.users]
        lines += [f"{user}@{LATE_DOMAIN} {LATE_DOMAIN}/{user}/" for user in self.late_users]
        lines.append(f"@{BOUNCE_DOMAIN} {BOUNCE_DOMAIN}/bounces/")
        path = self.config_dir / "virtual_mailboxes"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)

    def _make_maildirs(self) -> None:
        """Every Maildir exists (owned by the delivery user) before the first message, so a
        reader of the bounce Maildir can start polling at once."""
        maildirs = [self.maildir(user) for user in self.users]
        maildirs += [self.maildir(user, LATE_DOMAIN) for user in self.late_users]
        maildirs.append(self.bounce_maildir)
        for maildir in maildirs:
            for path in (maildir.parent, maildir, *(maildir / sub for sub in
                                                    ("tmp", "new", "cur"))):
                if not path.exists():
                    path.mkdir(mode=0o755)
                    os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def _postfix(self, command: str) -> None:
        self._run([_program("postfix"), "-c", str(self.config_dir), command])

    def _run(self, argv: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
        result = subprocess.run(argv, capture_output=True, text=True, env=env,
                                timeout=COMMAND_TIMEOUT, check=False)
        if result.returncode != 0:
            raise PostfixError(f"{' '.join(argv)} exited {result.returncode}:\n"
                               f"{result.stdout}{result.stderr}\n--- maillog ---\n"
                               f"{self.log_tail()}")

    def _wait_port(self, *, listening: bool, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self._port_open() != listening:
            if time.monotonic() > deadline:
                state = "accept" if listening else "refuse"
                raise PostfixError(f"port {self.port} did not {state} connections within "
                                   f"{timeout:g} s\n--- maillog ---\n{self.log_tail()}")
            time.sleep(0.05)

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        """Processes whose working directory is this instance's queue directory: the master
        and every daemon it started chdir there, nothing else does."""
        queue = os.path.realpath(self.queue_dir)
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd == queue or cwd.startswith(queue + os.sep):
                pids.append(int(entry.name))
        return pids


@contextmanager
def running_postfix(**options) -> Iterator[PostfixServer]:
    """A started :class:`PostfixServer` in a fresh temporary folder (``options`` go to its
    constructor); stopped, its processes gone and the folder removed on exit. Fails the
    test, with the reason, where Postfix cannot run (see :func:`why_no_postfix`): the lane
    is asked for explicitly (`make test-deployed`), so a missing MTA is never a pass."""
    reason = why_no_postfix()
    if reason:
        pytest.fail(reason)
    # Not pytest's tmp_path: that is private to root (0700) and Postfix's daemons, running
    # as mail_owner, must reach the maps and the Maildirs.
    root = Path(tempfile.mkdtemp(prefix="postfix-test-"))
    try:
        server = PostfixServer(root, **options)
        with server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postfix_server() -> Iterator[PostfixServer]:
    """A running private Postfix for the test module (inbox.example users ``alice``, ``bob``,
    ``carol`` and ``dave``)."""
    with running_postfix(users=("alice", "bob", "carol", "dave")) as server:
        yield server
