"""Who made a request, as the consent record names them."""

from __future__ import annotations

from flask import request

from newsletter.subscribers.service import Actor

USER_AGENT_MAX = 300


def request_actor(source: str) -> Actor:
    """The current request as an :class:`Actor` with ``source``, its client's IP address and
    user agent (cut to :data:`USER_AGENT_MAX` characters; ``None`` when empty). Whether the
    IP is kept (``RECORD_IP``) is decided where the event is recorded, not here."""
    return Actor(source=source, ip=request.remote_addr,
                 user_agent=request.user_agent.string[:USER_AGENT_MAX] or None)
