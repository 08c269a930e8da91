"""The ``newsletter`` command: one module per command group, each thin — it parses
arguments, calls a service, prints the result.

The project's commands are on the ``main`` group itself, so ``newsletter --help`` lists them
without building the app; the app (and its settings check) is built only when a command
runs. ``register_commands`` also adds them to ``app.cli`` for ``app.test_cli_runner()``.
"""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from newsletter.cli import (
    admins,
    bounces,
    content,
    digest,
    editions,
    feeds,
    mail,
    serve,
    setup,
    tokens,
)
from newsletter.config import ConfigError

ALL_COMMANDS = (*serve.COMMANDS, *content.COMMANDS, *tokens.COMMANDS, *mail.COMMANDS,
                *editions.COMMANDS, *digest.COMMANDS, *feeds.COMMANDS, *bounces.COMMANDS,
                *admins.COMMANDS, *setup.COMMANDS)


def _create_app():
    from newsletter import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"newsletter: {exc}", err=True)
        sys.exit(2)


class _Group(FlaskGroup):
    """``newsletter --help`` lists the project's commands even when the settings refuse to
    start (the reason is printed above the list); running a command still needs them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            return super().list_commands(ctx)
        except SystemExit:
            return sorted(self.commands)


@click.group(cls=_Group, create_app=_create_app, add_default_commands=False,
             add_version_option=False, load_dotenv=False)
def main() -> None:
    """Newsletter: publish AI-news syntheses and send them to readers."""


for _command in ALL_COMMANDS:
    main.add_command(_command)


def register_commands(app) -> None:
    for command in ALL_COMMANDS:
        app.cli.add_command(command)
