"""Bounce intake as operators run it: a Maildir read once per message (by the command and
by the worker), and the Postfix pipe, run as a real subprocess with the environment
Postfix's local(8) gives it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import func, select

from newsletter.db import db
from newsletter.delivery.models import BounceEvent, Delivery, ProcessedEvent
from newsletter.scheduler import build_scheduler
from newsletter.subscribers.models import Reader
from newsletter.subscribers.service import is_suppressed
from newsletter.wiring import reader_services
from tests.conftest import TEST_SECRET
from tests.integration.test_after_sending import SAMPLES, dsn_for, sent  # noqa: F401 - fixture
from tests.integration.test_forged_reports import _about

ROOT = Path(__file__).resolve().parents[2]
PIPE = ROOT / "deploy" / "newsletter-pipe"
NEWSLETTER = Path(sys.executable).with_name("newsletter")  # the venv's entry point
CLOSED_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/newsletter"  # nothing listens
EX_TEMPFAIL = 75


def make_maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def files(maildir: Path, folder: str) -> list[str]:
    return sorted(os.listdir(maildir / folder))


def unique(raw: bytes, tag: str) -> bytes:
    """The report with a Message-Id of its own (another report, not a redelivery)."""
    return raw.replace(b"Message-Id: <", f"Message-Id: <{tag}.".encode(), 1)


def counts() -> tuple[int, int]:
    db.session.rollback()  # end the test's read transaction: see what others committed
    return (db.session.scalar(select(func.count(ProcessedEvent.id))),
            db.session.scalar(select(func.count(BounceEvent.id))))


def suppressed(rows) -> list[bool]:
    db.session.rollback()
    return [is_suppressed(reader_services(), row.email) for row in rows]


# -- a Maildir is read once per message ----------------------------------------------------

def test_a_big_maildir_is_read_once(runner, sent, tmp_path, caplog):  # noqa: F811 - fixture
    """10,000 old reports (a few of them about real deliveries): the first run reads them
    all and marks them seen, the second reads nothing, the third only the new one."""
    caplog.set_level(logging.ERROR)  # 10,000 "no token of ours" warnings
    _, _, rows = sent
    maildir = make_maildir(tmp_path / "Maildir")
    template = (SAMPLES / "postfix_511_user_unknown.eml").read_bytes()
    token = re.search(rb"bounces\+([A-Za-z0-9_-]+)@", template)[1]
    started = time.perf_counter()
    for n in range(10_000):  # well-formed tokens we never signed: unmatched
        raw = unique(template.replace(token, f"{n:x}-AAAAAAAAAA".encode()), f"old{n}")
        (maildir / "new" / f"{1_700_000_000 + n}.M{n}P1.mx").write_bytes(raw)
    for n, (row, sample) in enumerate([(rows[0], "postfix_511_user_unknown.eml"),
                                       (rows[1], "arf_abuse_yahoo.eml")]):
        (maildir / "new" / f"{1_700_000_000 + n}.M{n}P2.mx").write_bytes(
            unique(dsn_for(row, sample), f"ours{n}"))
    written = time.perf_counter()

    first = runner.invoke(args=["bounces", "process", str(maildir)])
    first_done = time.perf_counter()
    assert first.exit_code == 0, first.output
    assert "10002 message(s): 1 complaint, 1 hard_bounce, 10000 unmatched" in first.output
    assert files(maildir, "new") == []
    seen = files(maildir, "cur")
    assert len(seen) == 10_002 and all(name.endswith(":2,S") for name in seen)
    assert suppressed(rows) == [True, True, False]
    before = counts()
    assert before == (10_002, 2)

    second = runner.invoke(args=["bounces", "process", str(maildir)])
    second_done = time.perf_counter()
    assert second.exit_code == 0, second.output
    assert "0 message(s): nothing" in second.output
    assert files(maildir, "cur") == seen and counts() == before

    (maildir / "new" / "1800000000.M1P3.mx").write_bytes(unique(dsn_for(rows[2]), "late"))
    third = runner.invoke(args=["bounces", "process", str(maildir)])
    third_done = time.perf_counter()
    assert "1 message(s): 1 hard_bounce" in third.output, third.output
    assert files(maildir, "new") == []
    assert sorted(set(files(maildir, "cur")) - set(seen)) == ["1800000000.M1P3.mx:2,S"]
    assert suppressed(rows) == [True, True, True]
    print(f"\n10,002 reports: written in {written - started:.1f} s, first run "
          f"{first_done - written:.1f} s, second {second_done - first_done:.2f} s, third "
          f"{third_done - second_done:.2f} s")


def test_what_is_read_and_how_it_is_marked(runner, sent, tmp_path):  # noqa: F811 - fixture
    _, _, rows = sent
    maildir = make_maildir(tmp_path / "Maildir")
    (maildir / "new" / "1.M1P1.mx").write_bytes((SAMPLES / "personal_reply.eml").read_bytes())
    # Moved to cur/ by an MUA but not read: read. Its other flags are kept, in order.
    (maildir / "cur" / "2.M2P1.mx:2,").write_bytes(unique(dsn_for(rows[0]), "a"))
    (maildir / "cur" / "3.M3P1.mx:2,RF").write_bytes(
        unique(dsn_for(rows[1], "arf_abuse_yahoo.eml"), "b"))
    # Already seen: never read again, even though it is about a real delivery.
    (maildir / "cur" / "4.M4P1.mx:2,S").write_bytes(unique(dsn_for(rows[2]), "c"))
    (maildir / "new" / ".hidden").write_bytes(unique(dsn_for(rows[2]), "d"))
    (maildir / "tmp" / "5.M5P1.mx").write_bytes(unique(dsn_for(rows[2]), "e"))

    result = runner.invoke(args=["bounces", "process", str(maildir)])

    assert result.exit_code == 0, result.output
    assert "3 message(s): 1 complaint, 1 hard_bounce, 1 skipped" in result.output
    assert "new/1.M1P1.mx: skipped: " in result.output, "the unparseable one is reported"
    assert files(maildir, "new") == [".hidden"]
    assert files(maildir, "cur") == ["1.M1P1.mx:2,S", "2.M2P1.mx:2,S", "3.M3P1.mx:2,FRS",
                                     "4.M4P1.mx:2,S"]
    assert suppressed(rows) == [True, True, False]
    again = runner.invoke(args=["bounces", "process", str(maildir)])
    assert "0 message(s): nothing" in again.output, "the unparseable one is not retried"


def test_a_report_applied_but_not_marked_is_harmless_to_read_again(runner, sent,  # noqa: F811
                                                                   tmp_path):
    """A crash between the commit and the rename: the next run reads the report again, finds
    every event already recorded, changes nothing, and marks it seen."""
    _, _, rows = sent
    maildir = make_maildir(tmp_path / "Maildir")
    raw = dsn_for(rows[1], "expired_447.eml")  # soft bounces: a replay would count twice
    for n in range(2):
        (maildir / "new" / f"{n}.M{n}P1.mx").write_bytes(unique(raw, f"soft{n}"))
    assert "2 soft_bounce" in runner.invoke(args=["bounces", "process", str(maildir)]).output
    for name in files(maildir, "cur"):  # as if the renames had not happened
        os.rename(maildir / "cur" / name, maildir / "new" / name.partition(":")[0])
    before = counts()

    result = runner.invoke(args=["bounces", "process", str(maildir)])

    assert "2 message(s): 2 duplicate" in result.output, result.output
    assert counts() == before and suppressed(rows) == [False, False, False]
    assert files(maildir, "new") == [] and len(files(maildir, "cur")) == 2


def test_a_database_error_leaves_the_report_unseen(sent, tmp_path):  # noqa: F811 - fixture
    _, _, rows = sent
    maildir = make_maildir(tmp_path / "Maildir")
    (maildir / "new" / "1.M1P1.mx").write_bytes(unique(dsn_for(rows[0]), "x"))
    (maildir / "new" / "2.M2P1.mx").write_bytes(unique(dsn_for(rows[1]), "y"))
    (maildir / "new" / "0.M0P1.mx").write_bytes((SAMPLES / "personal_reply.eml").read_bytes())

    done = run_command(["bounces", "process", str(maildir)],
                       {**app_settings(tmp_path), "NEWSLETTER_DATABASE_URL":
                        CLOSED_POSTGRES})

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert b"database unavailable" in done.stderr
    assert files(maildir, "new") == ["1.M1P1.mx", "2.M2P1.mx"], "kept for the next run"
    assert files(maildir, "cur") == ["0.M0P1.mx:2,S"], "not a report: done without the database"


def test_two_readers_at_once_apply_each_report_once(sent, tmp_path):  # noqa: F811 - fixture
    """Two commands read one Maildir at the same time: every report ends in cur/ once, and
    each event is applied once (the other reader sees a duplicate)."""
    _, _, rows = sent
    maildir = make_maildir(tmp_path / "Maildir")
    template = (SAMPLES / "expired_447.eml").read_bytes()
    for n in range(600):
        (maildir / "new" / f"{n:04}.M{n}P1.mx").write_bytes(unique(template, f"r{n}"))
    for n in range(3):  # three soft bounces for one reader: suppressed only if each counts once
        (maildir / "new" / f"{300 + n:04}.M{n}P2.mx").write_bytes(
            unique(dsn_for(rows[0], "expired_447.eml"), f"soft{n}"))
    env = app_settings(tmp_path)
    db.session.rollback()
    readers = [subprocess.Popen([str(NEWSLETTER), "bounces", "process", str(maildir)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=tmp_path)
               for _ in range(2)]
    outputs = [reader.communicate(timeout=120) for reader in readers]

    assert [reader.returncode for reader in readers] == [0, 0], outputs
    tallies = [{kind.decode(): int(n) for n, kind in
                re.findall(rb"(\d+) (\w+)", out.partition(b":")[2])} for out, _ in outputs]
    applied = sum(t.get("unmatched", 0) + t.get("soft_bounce", 0) for t in tallies)
    assert applied == 603, tallies
    assert files(maildir, "new") == [] and len(files(maildir, "cur")) == 603
    assert counts() == (603, 3)
    assert suppressed(rows) == [True, False, False]
    print(f"\ntwo readers: {tallies}")


# -- the worker ------------------------------------------------------------------------------

@pytest.fixture
def bounce_maildir(app_config, tmp_path) -> Path:
    """A Maildir the worker reads (NEWSLETTER_BOUNCE_MAILDIR), set before the app starts."""
    app_config["BOUNCE_MAILDIR"] = str(tmp_path / "bounces")
    return make_maildir(tmp_path / "bounces")


def test_the_worker_reads_the_bounce_maildir(bounce_maildir, app, sent, caplog):  # noqa: F811
    _, _, rows = sent
    job = build_scheduler(app).get_job("read-bounce-maildir")
    assert job.trigger.interval.total_seconds() == app.config["BOUNCE_POLL_SECONDS"] == 30
    (bounce_maildir / "new" / "1.M1P1.mx").write_bytes(dsn_for(rows[0]))
    caplog.set_level(logging.INFO, logger="newsletter.scheduler.jobs")

    job.func(*job.args)
    job.func(*job.args)  # nothing new: no line

    db.session.rollback()
    assert db.session.get(Delivery, rows[0].id).status == "bounced"
    assert suppressed(rows) == [True, False, False]
    assert files(bounce_maildir, "new") == [] and files(bounce_maildir, "cur") == [
        "1.M1P1.mx:2,S"]
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.scheduler.jobs"]
    assert lines == [f"bounce maildir {bounce_maildir}: 1 message(s): 1 hard_bounce"]


def test_a_missing_maildir_is_logged_once_per_change(bounce_maildir, app, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.delivery.bounces")
    job = build_scheduler(app).get_job("read-bounce-maildir")
    bounce_maildir.rename(bounce_maildir.with_name("elsewhere"))
    for _ in range(3):
        job.func(*job.args)
    bounce_maildir.with_name("elsewhere").rename(bounce_maildir)
    for _ in range(2):
        job.func(*job.args)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records
             if r.name == "newsletter.delivery.bounces"]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "cannot be read" in lines[0][1] and "readable again" in lines[1][1]


def test_no_maildir_no_job(app):
    assert app.config["BOUNCE_MAILDIR"] is None
    assert build_scheduler(app).get_job("read-bounce-maildir") is None


# -- the Postfix pipe ------------------------------------------------------------------------

def app_settings(tmp_path: Path) -> dict[str, str]:
    """What local(8) leaves in the environment, plus this app's settings."""
    config = current_app.config
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOGNAME": "nobody",
            "NEWSLETTER_DATABASE_URL": config["DATABASE_URL"],
            "NEWSLETTER_SECRET_KEY": TEST_SECRET,
            "NEWSLETTER_INSTANCE_DIR": config["INSTANCE_DIR"],
            "NEWSLETTER_MAIL_FROM": config["MAIL_FROM"],
            "NEWSLETTER_BASE_URL": config["BASE_URL"],
            "NEWSLETTER_POSTAL_ADDRESS": "Modelwire, 2 Real Street, Springfield, USA"}


def as_postfix_delivers(raw: bytes) -> bytes:
    """The message as local(8) pipes it: a ``From`` envelope line and its own headers first."""
    return (b"From MAILER-DAEMON  Tue Nov 26 09:14:03 2024\n"
            b"X-Original-To: bounces@news.example\nDelivered-To: bounces@news.example\n"
            b"Return-Path: <>\n" + raw)


def run_command(args: list[str], env: dict[str, str], stdin: bytes = b"",
                command: Path = NEWSLETTER) -> subprocess.CompletedProcess:
    db.session.rollback()  # hold no lock or snapshot while the command writes
    return subprocess.run([str(command), *args], input=stdin, env=env, capture_output=True,
                          timeout=60, cwd=env["HOME"], check=False, text=False)


def test_the_pipe_command_with_postfix_environment(sent, tmp_path):  # noqa: F811 - fixture
    _, _, rows = sent
    env = app_settings(tmp_path)

    done = run_command(["bounces", "process", "-"], env, as_postfix_delivers(dsn_for(rows[0])))
    assert done.returncode == 0, done.stderr
    assert b"1 message(s): 1 hard_bounce" in done.stdout
    assert suppressed(rows) == [True, False, False]

    forged = _about("postfix_511_user_unknown.eml", rows[1].email, None)  # an address only
    done = run_command(["bounces", "process", "-"], env, as_postfix_delivers(forged))
    assert done.returncode == 0, done.stderr
    assert b"1 message(s): 1 unmatched" in done.stdout
    assert suppressed(rows) == [True, False, False]
    db.session.rollback()
    assert db.session.get(Reader, rows[1].reader_id).status == "active"
    assert counts()[1] == 1

    reply = run_command(["bounces", "process", "-"], env,
                        as_postfix_delivers((SAMPLES / "personal_reply.eml").read_bytes()))
    assert reply.returncode == 0 and b"skipped" in reply.stderr, "never bounce a bounce"


def test_the_pipe_says_try_later_when_the_database_is_down(sent, tmp_path):  # noqa: F811
    _, _, rows = sent
    env = {**app_settings(tmp_path), "NEWSLETTER_DATABASE_URL": CLOSED_POSTGRES}
    done = run_command(["bounces", "process", "-"], env, as_postfix_delivers(dsn_for(rows[0])))
    assert done.returncode == EX_TEMPFAIL, (done.stdout, done.stderr)
    assert b"database unavailable" in done.stderr


def env_file(path: Path, settings: dict[str, str]) -> Path:
    """Settings as an operator writes /etc/newsletter/env: shell syntax, values quoted."""
    path.write_text("# newsletter settings\n" + "".join(
        f'{key}="{value}"\n' for key, value in settings.items()
        if key.startswith("NEWSLETTER_")))
    path.chmod(0o600)
    return path


def test_the_pipe_wrapper_reads_the_env_file(sent, tmp_path):  # noqa: F811 - fixture
    _, _, rows = sent
    assert os.access(PIPE, os.X_OK)
    settings = app_settings(tmp_path)
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NEWSLETTER_BIN": str(NEWSLETTER),
            "NEWSLETTER_ENV_FILE": str(env_file(tmp_path / "env", settings))}

    done = run_command([], bare, as_postfix_delivers(dsn_for(rows[2])), command=PIPE)
    assert done.returncode == 0, done.stderr
    assert b"1 message(s): 1 hard_bounce" in done.stdout
    assert suppressed(rows) == [False, False, True]

    down = {**bare, "NEWSLETTER_ENV_FILE": str(env_file(
        tmp_path / "env-down", {**settings, "NEWSLETTER_DATABASE_URL": CLOSED_POSTGRES}))}
    done = run_command([], down, as_postfix_delivers(dsn_for(rows[0])), command=PIPE)
    assert done.returncode == EX_TEMPFAIL, done.stderr


@pytest.mark.parametrize("problem", ["missing", "broken", "unquoted"])
def test_the_pipe_wrapper_keeps_the_report_when_its_settings_cannot_load(sent, tmp_path,  # noqa: F811
                                                                          problem):
    """Postfix must keep the report (75), not bounce it, while the settings are fixed. An
    unquoted value with spaces (fine for systemd, not for sh) would otherwise drop that
    setting silently, and the app would refuse to start."""
    _, _, rows = sent
    path = tmp_path / "env"
    if problem == "broken":
        path.write_text('NEWSLETTER_SECRET_KEY="unterminated\n')
    if problem == "unquoted":
        path.write_text("".join(f"{key}={value}\n" for key, value
                                in app_settings(tmp_path).items()
                                if key.startswith("NEWSLETTER_")))
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NEWSLETTER_BIN": str(NEWSLETTER),
            "NEWSLETTER_ENV_FILE": str(path)}
    done = run_command([], bare, as_postfix_delivers(dsn_for(rows[0])), command=PIPE)
    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert b"newsletter-pipe: " in done.stderr
    assert suppressed(rows) == [False, False, False]
