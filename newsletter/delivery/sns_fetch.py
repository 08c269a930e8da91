"""The one place that fetches over HTTPS: SNS signing certificates and subscription URLs.

The SES provider (``providers/ses.py``) checks every URL (https, an
``sns.<region>.amazonaws.com`` host) before it reaches this. ``wiring.build_services`` hands
one instance to both the SES provider and the hooks view; tests replace it by rebuilding the
providers around a fake (see ``tests/integration/test_after_sending.py``).
"""

from __future__ import annotations

import urllib.request


class HttpsFetcher:
    def __init__(self, timeout: float = 5.0, limit: int = 64 * 1024):
        self.timeout = timeout
        self.limit = limit

    def fetch(self, url: str) -> bytes:
        if not url.startswith("https://"):
            raise ValueError("only https URLs are fetched")
        with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 - https, checked host
            return response.read(self.limit)
