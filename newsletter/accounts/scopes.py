"""What an API token may do: one scope per kind of job a calling system has, the fewest by
default. The one place scopes are named; the API's routes each declare theirs
(``web.api.auth.require_token``), and a token outside them gets 403 with nothing changed.

Scopes do not imply one another: a token that schedules editions does not also make drafts
unless it holds ``editions:draft`` too. Reading what a scope writes comes with it (a token
that ingests syntheses may list them; a token that makes editions may read their counts).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from newsletter.errors import Invalid


class Scope(StrEnum):
    SYNTHESES_WRITE = "syntheses:write"
    EDITIONS_DRAFT = "editions:draft"
    EDITIONS_SEND = "editions:send"
    READERS_ADD = "readers:add"
    READERS_READ = "readers:read"
    READERS_WRITE = "readers:write"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS: dict[Scope, str] = {
    Scope.SYNTHESES_WRITE: "Ingest syntheses (create or update by external id) and list them, "
                           "drafts included.",
    Scope.EDITIONS_DRAFT: "Create special editions as drafts, for an editor to send; read "
                          "editions' status and counts.",
    Scope.EDITIONS_SEND: "Create special editions scheduled to go out (send_at) to every "
                         "reader of their audience, nobody reviewing; read editions' status "
                         "and counts.",
    Scope.READERS_ADD: "Add readers: double opt-in, or active at once with a consent record.",
    Scope.READERS_READ: "Read any reader by id: address, name, preferences.",
    Scope.READERS_WRITE: "Change and erase readers (erasure cannot be undone).",
}

#: What a token gets when nobody chose: ingest only.
DEFAULT: frozenset[Scope] = frozenset({Scope.SYNTHESES_WRITE})
#: Every scope, in the order they are listed (CLI help, the owners' page).
ALL: tuple[Scope, ...] = tuple(Scope)


class UnknownScope(Invalid, ValueError):
    """A scope name that is not one of :class:`Scope`."""


def parse(names: Iterable[str]) -> frozenset[Scope]:
    """The scopes these names (``"editions:send"``) stand for; raises :class:`UnknownScope`
    naming every unknown one and the known ones."""
    names = [name.strip() for name in names]
    unknown = [name for name in names if name not in {s.value for s in Scope}]
    if unknown:
        raise UnknownScope(
            f"unknown scope{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n[:60]) for n in unknown)}; the scopes are "
            f"{', '.join(s.value for s in ALL)}")
    return frozenset(Scope(name) for name in names)


def ordered(scopes: Iterable[Scope | str]) -> list[str]:
    """Scope names in :data:`ALL`'s order, without repeats (unknown names dropped)."""
    held = {str(s) for s in scopes}
    return [s.value for s in ALL if s.value in held]
