"""Who may receive an edition: the one home of that rule, used by fan-out, the claim and
the digests.

A reader may receive list mail when they are **active** (confirmed, not unsubscribed or
erased), **have an address**, and are **not suppressed** (by the keyed hash of their
address). They may receive a given edition on a given date when, also, they **get its
stream** (digests, or special editions: each can be left alone), are **not paused** on
that date, **follow one of its audience topics** (when it names any), and are **entitled
to its tier** (``billing.entitlements``).

The rule is SQL over a reader row under an alias, so the set-based statements (fan-out's
``INSERT … SELECT``, the claim's eligibility check, the digests' due readers) each embed
the same text instead of a copy of it.
"""

from __future__ import annotations

from sqlalchemy import Date, TextClause, bindparam, text

from newsletter.billing.entitlements import paid_sql


def nobody_would_receive(topics: list[str], paid: bool) -> str:
    """Why an audience is empty, in the one wording the composer and the API both show:
    "nobody would receive this edition: no active reader who takes special editions
    follows chips and has the paid plan"."""
    who = "no active reader who takes special editions"
    if topics:
        who += f" follows {', '.join(topics)}"
    if paid:
        who += " and has the paid plan"
    return f"nobody would receive this edition: {who}"


def may_get_list_mail(r: str = "r") -> str:
    """Active, with an address, not suppressed: may get any list mail at all."""
    # S608: the alias and parameter names are this code's constants, never input.
    return (f"{r}.status = 'active' AND {r}.email IS NOT NULL"  # noqa: S608
            f" AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = {r}.email_hash)")


def gets_stream(r: str, kind: str) -> str:
    """Gets the stream of an edition whose kind is the SQL expression ``kind`` (a column or
    a bind parameter): digests, or special editions (any kind but digest)."""
    return (f"(({kind} = 'digest' AND {r}.gets_digests = TRUE)"
            f" OR ({kind} <> 'digest' AND {r}.gets_specials = TRUE))")


def not_paused(r: str = "r", on: str = ":today") -> str:
    """Not paused on the date ``on`` (a bind parameter): a pause without an end date, or
    one ending after that date, holds."""
    return (f"NOT ({r}.frequency = 'paused'"
            f" AND ({r}.paused_until IS NULL OR {r}.paused_until > {on}))")


def is_paused(frequency: str, paused_until, on) -> bool:
    """:func:`not_paused`, negated, for a reader row already read (``on``: their date)."""
    return frequency == "paused" and (paused_until is None or paused_until > on)


def follows_any(r: str, topic_params: list[str]) -> str:
    """Follows one of the topics given as bind parameters (``:t0, :t1, …``)."""
    ids = ", ".join(f":{name}" for name in topic_params)
    return (f"EXISTS (SELECT 1 FROM reader_topics rt"  # noqa: S608
            f" WHERE rt.reader_id = {r}.id AND rt.topic_id IN ({ids}))")


def entitled_to_tier(r: str = "r", paid_only: str = ":paid_only") -> str:
    """Entitled to the edition: any reader for a free edition (``paid_only`` = 0), readers
    paying at ``:now`` for a premium one (``billing.entitlements.edition_is_premium``)."""
    return f"({paid_only} = 0 OR {paid_sql(r, ':now')})"


def receives_edition(r: str = "r", topic_params: list[str] | None = None) -> str:
    """The whole rule for one edition, with bind parameters ``:kind``, ``:today``,
    ``:now``, ``:paid_only`` and the audience topics' ``topic_params`` (none: everyone)."""
    parts = [may_get_list_mail(r), gets_stream(r, ":kind"), not_paused(r),
             entitled_to_tier(r)]
    if topic_params:
        parts.append(follows_any(r, topic_params))
    return " AND ".join(parts)


# The same rule as SQLAlchemy clauses over the ``readers`` table, for ORM-built queries.
def list_mail_clause() -> TextClause:
    return text(may_get_list_mail("readers"))


def digest_stream_clause() -> TextClause:
    return text(gets_stream("readers", "'digest'"))


def not_paused_clause(on) -> TextClause:
    return text(not_paused("readers", ":not_paused_on")).bindparams(
        bindparam("not_paused_on", on, type_=Date()))
