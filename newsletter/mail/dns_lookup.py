"""DNS look-ups of the records mail depends on (TXT, MX), through dnspython.

The :class:`Resolver` protocol is what the setup checks ask; :class:`DnsResolver` is the
real one. Both answer ``None`` for "DNS did not answer" and a list (maybe empty) for "DNS
answered": an empty list is a name with no such record, or no such name.
"""

from __future__ import annotations

from typing import Protocol

import dns.exception
import dns.resolver

__all__ = ["DnsResolver", "Resolver"]


class Resolver(Protocol):
    def txt(self, name: str) -> list[str] | None:
        """The TXT records at ``name``, each one's strings joined; ``None``: no answer."""
        ...

    def mx(self, name: str) -> list[str] | None:
        """The MX hosts of ``name`` (``"."`` for a null MX); ``None``: no answer."""
        ...


class DnsResolver:
    """Asks the system's nameservers (or ``nameservers`` on ``port``), ``timeout`` seconds
    per name.

    Before the first look-up it asks for the root zone's NS records, which every working
    recursive resolver knows: a nameserver that times out or denies even those (some
    offline sandboxes answer "no such name" to everything) is taken as not answering, and
    every look-up then answers ``None`` at once instead of a misleading "no record".
    """

    def __init__(self, timeout: float = 3.0, nameservers: list[str] | None = None,
                 port: int = 53) -> None:
        self.timeout = timeout
        self.nameservers = nameservers
        self.port = port
        self._resolver: dns.resolver.Resolver | None = None
        self._answers: bool | None = None

    def _ask(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        """The answer, ``None`` for no such record or name; raises on no answer at all."""
        if self._resolver is None:
            resolver = dns.resolver.Resolver(configure=self.nameservers is None)
            if self.nameservers is not None:
                resolver.nameservers = list(self.nameservers)
            resolver.port = self.port
            resolver.lifetime = self.timeout
            resolver.timeout = self.timeout
            self._resolver = resolver
        try:
            return self._resolver.resolve(name.rstrip(".") + ".", rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None

    def _working(self) -> bool:
        if self._answers is None:
            try:
                self._answers = self._ask(".", "NS") is not None
            except dns.exception.DNSException:
                self._answers = False
        return self._answers

    def _records(self, name: str, rdtype: str) -> list | None:
        if not self._working():
            return None
        try:
            answer = self._ask(name, rdtype)
        except dns.exception.DNSException:
            return None
        return list(answer) if answer is not None else []

    def txt(self, name: str) -> list[str] | None:
        records = self._records(name, "TXT")
        if records is None:
            return None
        return [b"".join(record.strings).decode("utf-8", "replace") for record in records]

    def mx(self, name: str) -> list[str] | None:
        records = self._records(name, "MX")
        if records is None:
            return None
        return [record.exchange.to_text(omit_final_dot=True) for record in records]
