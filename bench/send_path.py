"""What one recipient costs on the pre-encoded send path (prints figures; never a test).

    .venv/bin/python bench/send_path.py [--recipients 20000] [--cards 7]

A digest-sized variant (the synthesis card repeated, ~60 KB of compiled HTML, ten personal
placeholders) is rendered and compiled once, encoded once by ``MessageTemplate.build``,
then per recipient: ``MessageTemplate.render`` and ``FastDkimSigner.sign``. For
comparison, measured in the same run: the one-off path (``personalise`` +
``build_message``) and dkimpy's ``DkimSigner.sign`` on the same message.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.config import PROJECT_ROOT
from newsletter.mail import DkimSigner, EmailRenderer, build_message
from newsletter.mail.fastdkim import FastDkimSigner
from newsletter.mail.template import MessageTemplate

DIGEST_MJML = """{% extends "layouts/base.mjml" %}
{% set subscribed_to = "AI policy and safety" %}
{% block preheader %}This week's syntheses{% endblock %}
{% block content %}
    <mj-section>
      <mj-column>
        <mj-text>{{ personal.greeting }}</mj-text>
      </mj-column>
    </mj-section>
{% for synthesis in syntheses %}
{% include "partials/synthesis_card.mjml" %}
    <mj-section>
      <mj-column>
        <mj-text>
          <a href="{{ base_url }}/r/{{ loop.index }}/{{ personal.track }}">Read on</a>
        </mj-text>
      </mj-column>
    </mj-section>
{% endfor %}
{% endblock %}
"""
DIGEST_TXT = """{% extends "layouts/base.txt" %}
{% set subscribed_to = "AI policy and safety" %}
{% block content %}
{{ personal.greeting }}

{% for synthesis in syntheses %}
{% include "partials/synthesis_card.txt" %}

{% endfor %}
{% endblock %}
"""


def synthesis(n: int) -> dict:
    return {
        "title": f"Synthesis {n}: chips, policy and the compute race",
        "summary": "A summary paragraph. " * 30, "context": "Context. " * 60,
        "analysis": "Analyst take. " * 60, "watch": "Watch whether it holds. " * 3,
        "mentions": ["European Union", "NVIDIA"], "byline": "Modelwire Editorial",
        "source_name": "The Circuit Ledger",
        "source_url": "https://circuitledger.example/2026/11/story",
        "url": f"https://news.example/syntheses/s-{n}",
        "topic_names": ["AI policy and safety"],
        "published_at": datetime(2026, 11, 27, tzinfo=UTC),
    }


def values(i: int) -> dict[str, str]:
    return {
        "to": f"reader{i}@example.com", "message_id": f"d{i:010d}.7f3a",
        "list_unsubscribe": f"<https://news.example/u/{i:032d}>",
        "greeting": f"Hello reader {i},", "email": f"reader{i}@example.com",
        "unsubscribe_url": f"https://news.example/u/{i:032d}",
        "preferences_url": f"https://news.example/p/{i:032d}",
        "track": f"t{i:016x}",
    }


def per_call(fn, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--cards", type=int, default=7)
    args = parser.parse_args()
    n = args.recipients

    with tempfile.TemporaryDirectory() as tmp:
        templates = Path(tmp) / "emails"
        shutil.copytree(PROJECT_ROOT / "templates" / "emails", templates)
        (templates / "bench_digest.mjml").write_text(DIGEST_MJML)
        (templates / "bench_digest.txt").write_text(DIGEST_TXT)
        rendered = EmailRenderer(templates).render("bench_digest", {
            "publication": "Modelwire", "base_url": "https://news.example",
            "postal_address": "Modelwire, 1 Example Street, Springfield, USA",
            "subject": "This week in AI policy",
            "syntheses": [synthesis(k) for k in range(args.cards)],
        })

    start = time.perf_counter()
    template = MessageTemplate.build(
        from_addr="Modelwire <newsletter@news.example>", subject="This week in AI policy",
        text=rendered.text, html=rendered.html, message_id_domain="news.example",
        list_id="Modelwire <weekly.news.example>",
        extra_headers={"Feedback-ID": "digest:weekly:modelwire"})
    build_cost = time.perf_counter() - start
    placeholders = len(rendered.html.fields) + len(rendered.text.fields) + 3

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fast_signer = FastDkimSigner("mail", "news.example", pem)
    slow_signer = DkimSigner("mail", "news.example", pem)

    batch = [values(i) for i in range(n)]
    render_cost = per_call(lambda i: template.render(batch[i]), n)
    message = template.render(batch[0])
    fast_cost = per_call(lambda i: fast_signer.sign(message), max(n // 10, 200))
    slow_cost = per_call(lambda i: slow_signer.sign(message), 100)

    personal_keys = rendered.fields

    def one_off(i: int) -> bytes:
        v = batch[i]
        html, text = rendered.personalise(**{k: v[k] for k in personal_keys})
        return build_message(
            from_addr="Modelwire <newsletter@news.example>", to=v["to"],
            subject="This week in AI policy", text=text, html=html,
            message_id_domain="news.example", list_id="Modelwire <weekly.news.example>",
            list_unsubscribe_url=v["list_unsubscribe"][1:-1],
            extra_headers={"Feedback-ID": "digest:weekly:modelwire"})

    one_off_cost = per_call(one_off, 500)
    fast_total = per_call(lambda i: fast_signer.sign(template.render(batch[i])),
                          max(n // 10, 200))

    print(f"message size: {len(message) / 1024:.1f} KB (HTML {rendered.html_bytes_len / 1024:.1f}"
          f" KB compiled, {placeholders} personal placeholders)")
    print(f"MessageTemplate.build (once per variant):       {build_cost * 1e3:8.3f} ms")
    print(f"MessageTemplate.render (per recipient):         {render_cost * 1e6:8.1f} µs")
    print(f"FastDkimSigner.sign (per recipient):            {fast_cost * 1e3:8.3f} ms")
    print(f"dkimpy DkimSigner.sign, for comparison:         {slow_cost * 1e3:8.3f} ms")
    print(f"personalise + build_message, for comparison:    {one_off_cost * 1e3:8.3f} ms")
    print(f"fast path total, render + fast DKIM:            {fast_total * 1e3:8.3f} ms "
          f"(= {1 / fast_total:,.0f} msg/s on one core)")
    naive = one_off_cost + slow_cost
    print(f"one-off path total, build_message + dkimpy:     {naive * 1e3:8.3f} ms "
          f"(= {1 / naive:,.0f} msg/s on one core)")


if __name__ == "__main__":
    main()
