"""``python -m newsletter.cli``: the ``newsletter`` command."""

from newsletter.cli import main

main()
