"""Regenerate the README's configuration table from ``newsletter.config.SETTINGS``.

Run: ``.venv/bin/python bench/readme_settings.py`` (rewrites README.md in place).
"""

from pathlib import Path

from newsletter.config import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| variable | default | meaning |\n|---|---|---|\n"


def default(setting) -> str:
    if setting.default is None:
        return "—"
    if setting.key == "DIGEST_GRACE":
        return "`3h`"
    if setting.key == "EMAIL_TEMPLATES_DIR":
        return "`templates/emails`"
    return f"`{setting.default}`"


def main() -> None:
    text = README.read_text()
    start = text.index(HEADER) + len(HEADER)
    end = text.index("\n\n", start)
    rows = "\n".join(f"| `{s.env}` | {default(s)} | {s.help} |" for s in SETTINGS)
    README.write_text(text[:start] + rows + text[end:])


if __name__ == "__main__":
    main()
