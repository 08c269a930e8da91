"""Access that is not Stripe's doing, and what a reader's plan box says: complimentary
access granted by an owner, paid plans whose time ended, and a reader's standing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from newsletter.billing import entitlements
from newsletter.billing.models import BillingAccount, BillingSubscription
from newsletter.billing.service import LIVE_STATUSES, CannotUpgrade
from newsletter.billing.sync import lock_reader, refresh_plan
from newsletter.db import db
from newsletter.subscribers.models import Reader, ReaderStatus


def set_comp(reader: Reader, granted: bool, *, note: str, by: str, now: datetime) -> bool:
    """Grant or revoke complimentary access; whether anything changed (not committed)."""
    if reader.status == ReaderStatus.ERASED.value:
        raise CannotUpgrade("An erased reader cannot be given access.")
    lock_reader(reader.id)
    account = db.session.get(BillingAccount, reader.id)
    if account is None:
        if not granted:
            return False
        account = BillingAccount(reader_id=reader.id)
        db.session.add(account)
    if account.comp == granted:
        return False
    account.comp = granted
    account.comp_note = note[:200] if granted else ""
    account.comp_by = by[:320] if granted else ""
    account.comp_at = now if granted else None
    db.session.flush()
    refresh_plan(reader.id, now)
    return True


# -- name: lapse-paid-plans
# Contract: readers whose paid access ended (``plan_until`` passed) become ``free`` with no
# end date. Their access had already stopped at ``plan_until`` (every rule reads it); this
# only keeps the figures and lists plain.
def lapse_ended(now: datetime) -> int:
    result = db.session.execute(
        update(Reader).where(Reader.plan == entitlements.PAID, Reader.plan_until.is_not(None),
                             Reader.plan_until <= now)
        .values(plan=entitlements.FREE, plan_until=None)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount or 0


@dataclass(frozen=True)
class Standing:
    """What the preference centre says of a reader's plan."""

    paying: bool
    comp: bool
    has_customer: bool
    subscription: BillingSubscription | None   # the one that gives access, or the latest


def standing(reader: Reader, now: datetime) -> Standing:
    account = db.session.get(BillingAccount, reader.id)
    rows = list(db.session.scalars(select(BillingSubscription).where(
        BillingSubscription.reader_id == reader.id)
        .order_by(BillingSubscription.created_at.desc())))
    live = [row for row in rows if row.status in LIVE_STATUSES]
    return Standing(paying=entitlements.reader_is_paying(reader, now),
                    comp=bool(account and account.comp),
                    has_customer=bool(account and account.customer_id),
                    subscription=(live or rows or [None])[0])
