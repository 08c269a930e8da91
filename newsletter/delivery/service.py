"""Wiring the sender from settings, and the worker loop that runs it."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from flask import Flask
from sqlalchemy import select

from newsletter.db import db, utcnow
from newsletter.delivery.compose import EditionComposer
from newsletter.delivery.relays import parse_relays
from newsletter.delivery.sender import Sender, SendSettings
from newsletter.delivery.tokens import DeliveryTokens
from newsletter.editions import service as editions
from newsletter.editions.models import Edition, EditionStatus

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def delivery_tokens(config) -> DeliveryTokens:
    return DeliveryTokens(config["SECRET_KEYS"])


def make_sender(app: Flask, *, worker: str | None = None, transport_factory=None) -> Sender:
    """A sender for this app's database, relays, signer and links."""
    from newsletter.extensions import reader_services
    from newsletter.mail.fastdkim import FastDkimSigner

    config = app.config
    signer = None
    if config.get("DKIM_SELECTOR") and config.get("DKIM_DOMAIN") and \
            config.get("DKIM_PRIVATE_KEY_PATH"):
        signer = FastDkimSigner.from_files(config["DKIM_SELECTOR"], config["DKIM_DOMAIN"],
                                           config["DKIM_PRIVATE_KEY_PATH"])
    with app.app_context():
        links = reader_services().mailer.links
        engine = db.engine
    composer = EditionComposer(engine=engine, config=dict(config), signer=signer,
                               tokens=delivery_tokens(config), links=links)
    settings = SendSettings(
        worker_id=worker or worker_id(),
        batch_size=config["SEND_BATCH"],
        lease_seconds=config["LEASE_SECONDS"],
        max_attempts=config["MAX_ATTEMPTS"],
        max_age=timedelta(hours=config["MAX_AGE_HOURS"]),
        backoff_base=float(config["RETRY_BASE_SECONDS"]),
    )
    kwargs = {"transport_factory": transport_factory} if transport_factory else {}
    return Sender(engine=engine, relays=parse_relays(dict(config)), composer=composer,
                  settings=settings, **kwargs)


def start_due_editions(mail) -> list[int]:
    """Start every scheduled edition whose time has come; returns their ids."""
    now = utcnow()
    due = list(db.session.scalars(select(Edition.id).where(
        Edition.status == EditionStatus.SCHEDULED.value, Edition.send_at <= now)))
    started = []
    for edition_id in due:
        try:
            editions.start_sending(edition_id, mail, now=now)
            started.append(edition_id)
        except editions.EditionStateError:
            db.session.rollback()  # another worker started it first
    return started
