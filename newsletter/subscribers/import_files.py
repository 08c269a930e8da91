"""Reading an uploaded CSV of readers: its text, its delimiter, its columns, a guess of which
column is which, and its lines one by one with what is wrong with each.

Encodings: the text must be UTF-8 (a byte-order mark is allowed, as Excel's "CSV UTF-8"
writes one). A file that is not is refused whole, naming the first line that is not, unless
the admin says it is Windows-1252 (older Excel on Windows): decoding as Windows-1252 never
fails on Latin text, so guessing it would turn any other encoding into wrong letters
without a word.

A record is one line: a quoted field with a line break in it is reported, not joined, so a
broken quote spoils one line and every line keeps its number.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from newsletter.errors import Invalid

MAX_BYTES = 20 * 1024 * 1024
MAX_FIELD = 1000
MAX_COLUMNS = 50
SAMPLES = 3
ENCODINGS = {"utf-8": "UTF-8", "cp1252": "Windows-1252 (older Excel on Windows)"}
ROLES = ("email", "topics", "timezone")
_DELIMITERS = (",", ";", "\t", "|")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_GUESSES = {
    "email": re.compile(r"e-?mail|address|courriel|correo", re.IGNORECASE),
    "topics": re.compile(r"topic|interest|subject|list|segment", re.IGNORECASE),
    "timezone": re.compile(r"time.?zone|^tz$|zone", re.IGNORECASE),
}


class UnreadableFile(Invalid, ValueError):
    """The file cannot be read as CSV text; the message says why and what to do."""


def decode(data: bytes, encoding: str = "utf-8") -> str:
    """The file's text. ``encoding`` is ``utf-8`` (BOM allowed) or ``cp1252``; raises
    :class:`UnreadableFile` for an empty file, a spreadsheet, UTF-16, or bytes the encoding
    does not allow (naming the line)."""
    if encoding not in ENCODINGS:
        raise UnreadableFile("The encoding is UTF-8 or Windows-1252.")
    if not data.strip():
        raise UnreadableFile("The file is empty.")
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise UnreadableFile("This is a spreadsheet workbook, not a CSV file. In Excel "
                             "choose File → Save as → “CSV UTF-8”, then upload that file.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("This file is UTF-16 text. Save it as “CSV UTF-8” and upload "
                             "it again.")
    codec = "utf-8-sig" if encoding == "utf-8" else "cp1252"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        if encoding == "utf-8":
            raise UnreadableFile(
                f"This file is not UTF-8 text: line {line:,} has a byte (0x{byte:02x}) "
                "that UTF-8 does not allow. Save it as “CSV UTF-8” and upload it again, "
                "or, if it came from an older Excel on Windows, choose Windows-1252."
            ) from None
        raise UnreadableFile(f"Line {line:,} has a byte (0x{byte:02x}) that Windows-1252 "
                             "does not define: the file is in another encoding. Save it "
                             "as “CSV UTF-8”.") from None


def physical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each line that is not blank."""
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if line.strip():
            yield number, line


class LineProblem(Invalid, ValueError):
    """What is wrong with one line (the message is shown in the report)."""


def split_line(line: str, delimiter: str) -> list[str]:
    """The fields of one line; raises :class:`LineProblem` for a NUL byte, a broken quote
    or a field longer than :data:`MAX_FIELD` characters."""
    if "\0" in line:
        raise LineProblem("contains a NUL byte")
    if len(line) > MAX_FIELD * MAX_COLUMNS:
        raise LineProblem(f"is longer than {MAX_FIELD * MAX_COLUMNS:,} characters")
    try:
        fields = next(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise LineProblem(f"is not valid CSV ({exc})") from None
    for position, value in enumerate(fields, start=1):
        if len(value) > MAX_FIELD:
            raise LineProblem(f"field {position} is longer than {MAX_FIELD:,} characters")
    return [value.strip() for value in fields]


def _delimiter(first: str) -> str:
    best, fields = ",", 1
    for candidate in _DELIMITERS:
        try:
            count = len(next(csv.reader([first], delimiter=candidate)))
        except csv.Error:
            continue
        if count > fields:
            best, fields = candidate, count
    return best


@dataclass(frozen=True)
class Layout:
    """How the file looks: what the mapping form shows."""

    delimiter: str
    has_header: bool
    columns: list[str]                 # the header's names, or "Column 1", "Column 2", …
    samples: list[list[str]]           # the first data lines' fields
    rows: int                          # data lines (not blank, header left out)
    guess: dict[str, int | None] = field(default_factory=dict)  # role → column index


def _looks_like_address(value: str) -> bool:
    return "@" in value and " " not in value.strip()


def read_layout(text: str, delimiter: str | None = None,
                has_header: bool | None = None) -> Layout:
    """The file's delimiter (guessed from the first line unless given), whether its first
    line is a header (guessed: no cell of it looks like an address), its columns, a few
    sample lines and a guess of the email, topics and timezone columns. Raises
    :class:`UnreadableFile` when the first line cannot be read or has too many columns."""
    lines = physical_lines(text)
    first_number, first = next(lines, (0, ""))
    if not first:
        raise UnreadableFile("The file has no line with text on it.")
    delimiter = delimiter or _delimiter(first)
    try:
        head = split_line(first, delimiter)
    except LineProblem as exc:
        raise UnreadableFile(f"The first line {exc}.") from None
    if len(head) > MAX_COLUMNS:
        raise UnreadableFile(f"The first line has {len(head)} columns; at most "
                             f"{MAX_COLUMNS} are read.")
    if has_header is None:
        has_header = not any(_looks_like_address(cell) for cell in head)
    samples: list[list[str]] = [] if has_header else [head]
    rows = 0 if has_header else 1
    for _, line in lines:
        rows += 1
        if len(samples) < SAMPLES:
            try:
                samples.append(split_line(line, delimiter))
            except LineProblem:
                continue
    columns = ([name or f"Column {i}" for i, name in enumerate(head, start=1)] if has_header
               else [f"Column {i}" for i in range(1, len(head) + 1)])
    guess: dict[str, int | None] = {}
    for role, pattern in _GUESSES.items():
        guess[role] = next((i for i, name in enumerate(columns)
                            if has_header and pattern.search(name)
                            and i not in guess.values()), None)
    if guess["email"] is None:
        guess["email"] = next((i for i in range(len(columns))
                               if any(i < len(s) and _looks_like_address(s[i])
                                      for s in samples)), None)
    return Layout(delimiter, has_header, columns, samples, rows, guess)


def data_lines(text: str, has_header: bool) -> Iterator[tuple[int, str]]:
    """(line number, text) of each data line: not blank, the header left out."""
    lines = physical_lines(text)
    if has_header:
        next(lines, None)
    yield from lines
