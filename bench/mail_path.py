"""What one message costs on today's mail path, step by step (prints figures; never a test).

    .venv/bin/python bench/mail_path.py [--messages 2000]

Steps: MJML compile of the synthesis email (cold), a cached render, per-recipient
personalisation, building the RFC 5322 message, DKIM signing (dkimpy), and the file
transport's atomic write. The per-recipient total shows how far the naive path is from the
pre-encoded one the delivery engine needs (see ../shared/GUIDE.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import PROJECT_ROOT
from newsletter.mail import DkimSigner, EmailRenderer, FileTransport, build_message


def context(n: int) -> dict:
    return {
        "publication": "Modelwire", "base_url": "https://news.example",
        "postal_address": "Modelwire, 1 Example Street, Springfield, USA",
        "subject": f"Synthesis {n}",
        "synthesis": {
            "title": f"Synthesis {n}: chips, policy and the compute race",
            "summary": "A summary paragraph. " * 30, "context": "Context. " * 60,
            "analysis": "Analyst take. " * 60, "watch": "Watch whether it holds. " * 3,
            "mentions": ["European Union", "NVIDIA"], "byline": "Modelwire Editorial",
            "source_name": "The Circuit Ledger",
            "source_url": "https://circuitledger.example/2026/11/story",
            "url": f"https://news.example/syntheses/s-{n}",
            "topic_names": ["AI policy and safety"],
            "published_at": datetime(2026, 11, 27, tzinfo=UTC),
        },
    }


def per_call(fn, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    n = args.messages

    renderer = EmailRenderer(PROJECT_ROOT / "templates" / "emails")
    cold = per_call(lambda i: renderer.render("synthesis", context(10_000 + i)), 50)
    rendered = renderer.render("synthesis", context(1))
    cached = per_call(lambda i: renderer.render("synthesis", context(1)), 200)

    def personal(i):
        return rendered.personalise(greeting=f"Hello reader {i},", email=f"r{i}@example.com",
                                    unsubscribe_url=f"https://news.example/u/{i:032d}",
                                    preferences_url=f"https://news.example/p/{i:032d}")

    personalise = per_call(personal, n)
    html, text = personal(0)

    def build(i):
        return build_message(from_addr="Modelwire <newsletter@news.example>",
                             to=f"r{i}@example.com", subject="Synthesis", text=text, html=html,
                             message_id_domain="news.example", list_id="Modelwire <d.news.example>",
                             list_unsubscribe_url=f"https://news.example/u/{i}")

    build_cost = per_call(build, n)
    message = build(0)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signer = DkimSigner("mail", "news.example", pem)
    sign_cost = per_call(lambda i: signer.sign(message), max(n // 10, 50))
    with tempfile.TemporaryDirectory() as tmp:
        transport = FileTransport(Path(tmp))
        write_cost = per_call(lambda i: transport.send("a@b.c", ["r@example.com"], message),
                              max(n // 4, 50))

    print(f"message size: {len(message) / 1024:.1f} KB (HTML {rendered.html_bytes_len / 1024:.1f}"
          f" KB compiled)")
    print(f"MJML compile, cold (per distinct content): {cold * 1e3:8.3f} ms")
    print(f"render, cached (per variant):               {cached * 1e3:8.3f} ms")
    print(f"personalise (per recipient):                {personalise * 1e6:8.1f} µs")
    print(f"build_message (per recipient):              {build_cost * 1e3:8.3f} ms")
    print(f"DKIM sign, dkimpy (per recipient):          {sign_cost * 1e3:8.3f} ms")
    print(f"file transport write (per recipient):       {write_cost * 1e3:8.3f} ms")
    total = personalise + build_cost + sign_cost
    print(f"per-recipient CPU before the transport:     {total * 1e3:8.3f} ms "
          f"(= {1 / total:,.0f} msg/s on one core)")


if __name__ == "__main__":
    main()
