"""CSV imports of readers: upload, mapping, the consent source, the rules (duplicates,
known readers, suppressed addresses, broken lines), the worker path, claims, encodings and
the size limit."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from newsletter.db import db, utcnow
from newsletter.subscribers import imports
from newsletter.subscribers.addresses import email_hash
from newsletter.subscribers.models import (
    ConsentEvent,
    ImportJob,
    ImportProblem,
    Reader,
    Suppression,
)
from tests.factories_readers import make_reader
from tests.support.admins import csrf, make_admin, sign_in

MB = 1024 * 1024


def signed_in(app, role: str = "editor"):
    client = app.test_client()
    make_admin(f"{role}@news.example", role)
    assert sign_in(client, f"{role}@news.example").status_code == 302
    return client


def services():
    from newsletter.wiring import reader_services

    return reader_services()


def upload(client, data: bytes, name: str = "readers.csv", encoding: str = "utf-8",
           token: str | None = None):
    token = token or csrf(client, "/admin/readers/import")
    return client.post("/admin/readers/import", data={
        "file": (io.BytesIO(data), name), "encoding": encoding, "csrf_token": token},
        content_type="multipart/form-data")


def job_id_of(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(re.search(r"/import/(\d+)$", response.headers["Location"])[1])


def start(client, job_id: int, **fields):
    form = {"email_column": "0", "consent_source": "signup sheet at the 2026 conference",
            "has_header": "yes", "csrf_token": csrf(client, f"/admin/readers/import/{job_id}"),
            **fields}
    return client.post(f"/admin/readers/import/{job_id}/start", data=form)


def suppress(email: str, reason: str) -> None:
    db.session.add(Suppression(email_hash=email_hash(email, services().hash_key),
                               reason=reason))
    db.session.commit()


def problems(job_id: int) -> dict[int, str]:
    return dict(db.session.execute(select(ImportProblem.line, ImportProblem.reason)
                                   .where(ImportProblem.job_id == job_id)).all())


# -- a small file, in the request --------------------------------------------------------

def test_a_small_file_is_mapped_needs_a_consent_source_and_imports(app, topics):
    known = make_reader("known@example.com", topics=("ai-policy-and-safety",))
    pending = make_reader("pending@example.com", status="pending",
                          topics=("ai-policy-and-safety",))
    make_reader("left@example.com", status="unsubscribed")
    suppress("bounced@example.com", "hard_bounce")
    client = signed_in(app)
    data = (b"Name;E-mail address;Interests;Time zone\n"
            b"Ada;ADA@example.com;models-and-research;Europe/Paris\n"
            b"Known;known@example.com;Models and research;\n"
            b"Pending;pending@example.com;;\n"
            b"Left;left@example.com;;\n"
            b"Bounced;bounced@example.com;;\n"
            b"\n"
            b"Again;ada@example.com;;\n"
            b"Zed;zed@example.com;ai-policy-and-safety|models-and-research;Mars/Olympus\n"
            b"Bad;not-an-address;;\n")
    job_id = job_id_of(upload(client, data))
    mapping = client.get(f"/admin/readers/import/{job_id}").get_data(as_text=True)
    # The guess from the header row: the delimiter, and which column is which.
    assert "8 lines of readers, after a header line" in mapping
    assert '<option value="1" selected>2. E-mail address</option>' in mapping
    assert '<option value="2" selected>3. Interests</option>' in mapping
    assert '<option value="3" selected>4. Time zone</option>' in mapping

    before = db.session.scalar(select(func.count(Reader.id)))
    refused = start(client, job_id, email_column="1", topics_column="2",
                    timezone_column="3", consent_source="  ")
    assert refused.status_code == 400
    assert "consent record" in refused.get_data(as_text=True)
    assert db.session.get(ImportJob, job_id).status == "uploaded"
    assert db.session.scalar(select(func.count(Reader.id))) == before

    done = start(client, job_id, email_column="1", topics_column="2", timezone_column="3",
                 topics="ai-policy-and-safety")
    assert done.status_code == 303
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "done" and job.data is None
    assert (job.added, job.updated, job.unchanged, job.skipped) == (1, 2, 0, 5)
    found = problems(job_id)
    assert found[5].startswith("the reader is unsubscribed")
    assert found[6].startswith("suppressed (hard bounce)")
    assert found[8] == "duplicate of line 2"
    assert found[9] == "unknown timezone 'Mars/Olympus'"
    assert found[10].startswith("invalid address")
    ada = db.session.scalar(select(Reader).where(Reader.email == "ada@example.com"))
    assert ada.status == "active" and ada.timezone == "Europe/Paris" and ada.source == "import"
    assert [t.slug for t in ada.topics] == ["ai-policy-and-safety", "models-and-research"]
    subscribe = db.session.scalar(select(ConsentEvent).where(
        ConsentEvent.reader_id == ada.id, ConsentEvent.kind == "subscribe"))
    assert subscribe.source == "import"
    assert subscribe.detail["consent_record"] == {
        "source_detail": "signup sheet at the 2026 conference", "import": job_id, "line": 2,
        "admin": "editor@news.example"}
    db.session.expire_all()
    assert sorted(t.slug for t in db.session.get(Reader, known.id).topics) == [
        "ai-policy-and-safety", "models-and-research"]
    assert db.session.get(Reader, pending.id).status == "active"
    report = client.get(f"/admin/readers/import/{job_id}").get_data(as_text=True)
    assert "duplicate of line 2" in report and "Download as CSV" in report
    # Started once: a second start changes nothing.
    again = start(client, job_id, email_column="1")
    assert again.status_code == 303
    assert db.session.scalar(select(func.count(Reader.id))) == before + 1


def test_a_file_without_a_header_and_the_topics_rule(app, topics):
    client = signed_in(app)
    job_id = job_id_of(upload(client, b"ada@example.com,x\nbob@example.com,y\n"))
    page = client.get(f"/admin/readers/import/{job_id}").get_data(as_text=True)
    assert "2 lines of readers." in page and "The first line is a header" in page
    refused = start(client, job_id, has_header="no")
    assert refused.status_code == 400 and "Choose the topics everyone gets" in \
        refused.get_data(as_text=True)
    assert start(client, job_id, has_header="no",
                 topics="models-and-research").status_code == 303
    assert db.session.get(ImportJob, job_id).added == 2


# -- the worker path ---------------------------------------------------------------------

def big_file(n: int = 10_000) -> tuple[bytes, dict[int, str]]:
    """A CSV of ``n`` good lines with broken ones among them; the broken lines' numbers and
    what the report must say about each."""
    lines = ["email,name,topics"]
    broken: dict[int, str] = {}
    for i in range(n):
        lines.append(f"reader{i}@example.com,Reader {i},ai-policy-and-safety")
        number = len(lines)
        if i % 1000 == 10:
            lines.append(f"broken{i}@,Nobody,ai-policy-and-safety")
            broken[len(lines)] = "invalid address"
        if i % 1000 == 20:
            lines.append(f"short{i}@example.com,Short")
            broken[len(lines)] = "has 2 fields; the first line has 3"
        if i % 1000 == 30:
            lines.append(f"reader{i}@example.com,Twice,models-and-research")
            broken[len(lines)] = f"duplicate of line {number:,}"
    lines.append("suppressed@example.com,Gone,ai-policy-and-safety")
    broken[len(lines)] = "suppressed (complaint)"
    lines.append("=cmd|' /C calc'!A0,Formula,ai-policy-and-safety")
    broken[len(lines)] = "invalid address"
    lines.append("nul\0@example.com,Nul,ai-policy-and-safety")
    broken[len(lines)] = "contains a NUL byte"
    lines.append('"unclosed@example.com,Quote,ai-policy-and-safety')
    broken[len(lines)] = "is not valid CSV"
    lines.append("long@example.com," + "x" * 1001 + ",ai-policy-and-safety")
    broken[len(lines)] = "field 2 is longer than 1,000 characters"
    return ("\r\n".join(lines) + "\r\n").encode(), broken


def test_ten_thousand_lines_run_by_the_worker_with_every_broken_line_reported(app, topics):
    from newsletter.scheduler.jobs import run_reader_imports

    suppress("suppressed@example.com", "complaint")
    make_reader("reader5@example.com", topics=("models-and-research",))
    client = signed_in(app)
    data, broken = big_file()
    job_id = job_id_of(upload(client, data))
    queued = start(client, job_id, topics_column="2")
    assert queued.status_code == 303
    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "queued" and job.total_rows == 10_000 + len(broken)
    waiting = client.get(f"/admin/readers/import/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' in waiting and "data-import-progress-url" in waiting
    assert client.get(f"/admin/readers/import/{job_id}/progress.json").json["status"] == \
        "queued"

    run_reader_imports(app)  # what the worker's scheduler calls

    db.session.expire_all()
    job = db.session.get(ImportJob, job_id)
    assert job.status == "done" and job.rows_done == job.total_rows and job.data is None
    assert (job.added, job.updated, job.skipped) == (9_999, 1, len(broken))
    assert db.session.scalar(select(func.count(Reader.id)).where(
        Reader.status == "active")) == 10_000
    assert db.session.scalar(select(func.count(ConsentEvent.id)).where(
        ConsentEvent.source == "import")) == 2 * 9_999 + 1
    found = problems(job_id)
    assert set(found) == set(broken)
    for line, reason in broken.items():
        assert found[line].startswith(reason) or reason in found[line], (line, found[line])
    progress = client.get(f"/admin/readers/import/{job_id}/progress.json").json
    assert progress["status"] == "done" and progress["percent"] == 100
    assert progress["skipped"] == len(broken)

    report = client.get(f"/admin/readers/import/{job_id}/skipped.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert rows[0] == ["line", "value", "reason"] and len(rows) == len(broken) + 1
    assert [int(r[0]) for r in rows[1:]] == sorted(broken)
    formula = next(r for r in rows if r[1].startswith("'="))
    assert formula[1] == "'=cmd|' /C calc'!A0"
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    nul = next(r for r in rows if "NUL" in r[2])
    assert "\0" not in nul[1]


def test_two_workers_claiming_one_import_only_one_runs_it(app, topics):
    data = b"email\n" + b"".join(f"r{i}@example.com\n".encode() for i in range(50))
    job = imports.create(data, "r.csv", "utf-8", None, "editor@news.example")
    imports.configure(services(), job.id, email_column="0", topics=["ai-policy-and-safety"],
                      consent_source="the old list")
    now = utcnow()
    first = imports.claim(job.id, now)
    second = imports.claim(job.id, now)
    assert first and second is None
    assert imports.claim_next(now) is None
    assert imports.run(services(), job.id, "not-the-claim") is False
    assert db.session.scalar(select(func.count(Reader.id))) == 0
    assert imports.run(services(), job.id, first) is True
    db.session.expire_all()
    assert db.session.get(ImportJob, job.id).added == 50
    assert imports.claim(job.id, now + timedelta(hours=1)) is None  # done: nobody runs it


def test_a_worker_that_dies_mid_way_is_taken_over_from_its_checkpoint(app, topics):
    data = b"email\n" + b"".join(f"r{i}@example.com\n".encode() for i in range(250))
    job = imports.create(data, "r.csv", "utf-8", None, "editor@news.example")
    imports.configure(services(), job.id, email_column="0", topics=["ai-policy-and-safety"],
                      consent_source="the old list")
    start_at = utcnow()
    token = imports.claim(job.id, start_at)
    calls = []

    def dying_clock():
        calls.append(1)
        if len(calls) > 4:  # two chunks written (each asks the time twice), then it dies
            raise SystemExit("worker killed")
        return start_at

    with pytest.raises(SystemExit):
        imports.run(services(), job.id, token, now=dying_clock, chunk=100)
    db.session.rollback()
    db.session.expire_all()
    job = db.session.get(ImportJob, job.id)
    assert (job.status, job.rows_done, job.added) == ("running", 200, 200)
    assert imports.claim(job.id, start_at + timedelta(seconds=30)) is None  # lease holds
    later = start_at + imports.LEASE + timedelta(seconds=1)
    taken = imports.claim(job.id, later)
    assert taken
    assert imports.run(services(), job.id, token) is False  # the dead worker's claim is gone
    assert imports.run(services(), job.id, taken, now=lambda: later, chunk=100) is True
    db.session.expire_all()
    job = db.session.get(ImportJob, job.id)
    assert (job.status, job.added, job.skipped) == ("done", 250, 0)
    assert db.session.scalar(select(func.count(Reader.id))) == 250


# -- what is refused ---------------------------------------------------------------------

def test_bad_encodings_are_refused_with_the_line(app, topics):
    client = signed_in(app)
    latin = "email,name\nada@example.com,Ada\nbob@example.com,Jos\xe9\n".encode("cp1252")
    refused = upload(client, latin)
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "not UTF-8 text: line 3" in text and "Windows-1252" in text
    assert db.session.scalar(select(func.count(ImportJob.id))) == 0
    # Said to be Windows-1252, it is read as such.
    job_id = job_id_of(upload(client, latin, encoding="cp1252"))
    assert "José" in client.get(f"/admin/readers/import/{job_id}").get_data(as_text=True)
    # A byte-order mark (Excel's "CSV UTF-8") is fine.
    assert upload(client, "\ufeffemail\nada@example.com\n".encode()).status_code == 303
    utf16 = upload(client, "email\nada@example.com\n".encode("utf-16"))
    assert utf16.status_code == 400 and "UTF-16" in utf16.get_data(as_text=True)
    workbook = upload(client, b"PK\x03\x04rest of a zip", name="readers.xlsx")
    assert workbook.status_code == 400 and "workbook" in workbook.get_data(as_text=True)
    assert upload(client, b"  \n\n").status_code == 400
    assert upload(client, b"", name="").status_code == 400
    assert upload(client, b"email\n", encoding="latin-9").status_code == 400


def test_a_50_mb_file_is_refused_with_413(app, topics):
    client = signed_in(app)
    token = csrf(client, "/admin/readers/import")
    body = b"email\n" + b"a@example.com\n" * (50 * MB // 14)
    refused = upload(client, body, token=token)
    assert refused.status_code == 413
    assert "at most 20 MB" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ImportJob.id))) == 0


class CountingStream(io.RawIOBase):
    """A 50 MB request body that is never held in memory, and counts what is read of it."""

    size = 50 * MB

    def __init__(self):
        self.position = 0
        self.read_bytes = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position,
                         io.SEEK_END: self.size}[whence] + offset
        return self.position

    def readinto(self, buffer):
        size = max(0, min(len(buffer), self.size - self.position))
        buffer[:size] = b"a" * size
        self.position += size
        self.read_bytes += size
        return size


def test_a_declared_50_mb_body_is_refused_before_it_is_read(app, topics):
    client = signed_in(app)
    stream = CountingStream()
    refused = client.post("/admin/readers/import", input_stream=stream,
                          content_type="multipart/form-data; boundary=x")
    assert refused.status_code == 413 and stream.read_bytes == 0


def test_a_file_under_the_limit_but_over_the_app_wide_limit_is_accepted(app, topics):
    client = signed_in(app)
    assert app.config["MAX_CONTENT_LENGTH"] < 2 * MB
    body = b"email\n" + b"".join(f"reader{i:07d}@example.com\n".encode()
                                 for i in range(2 * MB // 28))
    job_id = job_id_of(upload(client, body))
    assert db.session.get(ImportJob, job_id).size == len(body)
    # Every other admin form keeps the app-wide limit.
    big = client.post("/admin/readers/suppressions/add",
                      data={"email": "a@example.com", "note": "x" * (2 * MB),
                            "csrf_token": csrf(client, "/admin/readers/suppressions")})
    assert big.status_code == 413


def test_import_routes_refuse_viewers_missing_tokens_and_head(app, topics):
    editor = signed_in(app)
    job_id = job_id_of(upload(editor, b"email\nada@example.com\n"))
    viewer = signed_in(app, "viewer")
    token = csrf(viewer, f"/admin/readers/import/{job_id}")
    assert "Say which column" not in viewer.get(f"/admin/readers/import/{job_id}").get_data(
        as_text=True)
    assert viewer.get("/admin/readers/import").status_code == 403
    assert upload(viewer, b"email\nbob@example.com\n", token=token).status_code == 403
    for path in (f"/admin/readers/import/{job_id}/start",
                 f"/admin/readers/import/{job_id}/discard"):
        assert viewer.post(path, data={"email_column": "0", "consent_source": "x",
                                       "topics": "ai-policy-and-safety",
                                       "csrf_token": token}).status_code == 403
        assert editor.post(path, data={"email_column": "0", "consent_source": "x",
                                       "topics": "ai-policy-and-safety"}).status_code == 400
        assert editor.post(path, data={"csrf_token": token}).status_code == 400  # stale
        assert editor.head(path).status_code == 405
    no_token = editor.post("/admin/readers/import", data={
        "file": (io.BytesIO(b"email\nbob@example.com\n"), "r.csv")},
        content_type="multipart/form-data")
    assert no_token.status_code == 400
    assert editor.head("/admin/readers/import").status_code == 200
    assert db.session.scalar(select(func.count(ImportJob.id))) == 1
    assert db.session.get(ImportJob, job_id).status == "uploaded"
    assert db.session.scalar(select(func.count(Reader.id))) == 0
    # Discarding an uploaded file deletes it; nothing was imported.
    token = csrf(editor, f"/admin/readers/import/{job_id}")
    assert editor.post(f"/admin/readers/import/{job_id}/discard",
                       data={"csrf_token": token}).status_code == 303
    assert db.session.get(ImportJob, job_id) is None
    assert editor.get(f"/admin/readers/import/{job_id}").status_code == 404


def test_a_file_nobody_started_is_deleted_after_a_day(app, topics):
    from newsletter.scheduler.jobs import run_reader_imports

    old = imports.create(b"email\nada@example.com\n", "old.csv", "utf-8", None, "e@x.example")
    new = imports.create(b"email\nbob@example.com\n", "new.csv", "utf-8", None, "e@x.example")
    old.created_at = utcnow() - timedelta(days=2)
    db.session.commit()
    old_id, new_id = old.id, new.id
    run_reader_imports(app)
    db.session.expire_all()
    assert db.session.get(ImportJob, old_id) is None
    assert db.session.get(ImportJob, new_id).status == "uploaded"
    assert db.session.scalar(select(func.count(Reader.id))) == 0


def test_skipped_lines_name_no_erasure_are_for_editors_and_go_when_the_person_is_erased(
        app, topics):
    from newsletter.accounts.models import AuditEntry
    from newsletter.subscribers.privacy import erase_reader
    from newsletter.subscribers.service import Actor

    twice = make_reader("twice@example.com", topics=("ai-policy-and-safety",))
    suppress("gone@example.com", "erased")
    editor = signed_in(app)
    job_id = job_id_of(upload(editor, b"email\ntwice@example.com\nTwice@example.com\n"
                                      b"gone@example.com\nnew@example.com\n"))
    assert start(editor, job_id, topics="ai-policy-and-safety").status_code == 303
    found = problems(job_id)
    assert found[3].startswith("duplicate of line 2")
    assert found[4].startswith("suppressed (on the suppression list)")
    assert "erase" not in found[4]

    viewer = signed_in(app, "viewer")
    assert viewer.get(f"/admin/readers/import/{job_id}/skipped.csv").status_code == 403
    assert editor.head(f"/admin/readers/import/{job_id}/skipped.csv").status_code == 200
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "downloaded skipped import lines")) == 0
    report = editor.get(f"/admin/readers/import/{job_id}/skipped.csv")
    assert report.status_code == 200 and "twice@example.com" in report.get_data(as_text=True)
    assert db.session.scalar(select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "downloaded skipped import lines")) == 1

    erase_reader(services(), db.session.get(Reader, twice.id), Actor(source="admin"))
    values = set(db.session.scalars(select(ImportProblem.value).where(
        ImportProblem.job_id == job_id)))
    assert values == {"gone@example.com"}  # the erased person's lines are gone
    job = db.session.get(ImportJob, job_id)
    assert (job.added, job.skipped) == (1, 2)  # the report keeps its counts
