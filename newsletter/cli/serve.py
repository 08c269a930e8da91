"""``newsletter serve`` and ``newsletter worker``: the web process and the worker."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@with_appcontext
def serve(host: str, port: int) -> None:
    """Serve the site (threaded, no reloader: one process, so later the sender runs in it)."""
    from flask import current_app
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()
    if app.config["DEVELOPMENT"]:
        from pathlib import Path

        from newsletter.instance import store_base_url

        # Commands typed in a second terminal on this instance link here too.
        store_base_url(Path(app.instance_path), app.config["BASE_URL"])
    stop = None
    if app.config["SEND_IN_WEB"]:
        import threading

        from newsletter.scheduler import run_worker

        stop = threading.Event()
        threading.Thread(target=run_worker, args=(app, stop), name="sender",
                         daemon=True).start()
    click.echo(f"Serving {app.config['PUBLICATION_NAME']} on http://{host}:{port}/ "
               f"(mail transport: {app.config['MAIL_TRANSPORT']}, sender "
               f"{'in this process' if stop else 'off: run newsletter worker'})")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False,
                   use_debugger=bool(app.config.get("DEBUG")))
    finally:
        if stop is not None:
            stop.set()

@click.command("worker")
@click.option("--poll", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between checks for scheduled editions that are due.")
@with_appcontext
def worker_command(poll: float) -> None:
    """Run the scheduler (digests at each reader's time, scheduled editions, feeds,
    housekeeping) and send continuously: claim deliveries, retry deferred ones."""
    import signal
    import threading

    from flask import current_app

    from newsletter.scheduler import run_worker

    stop = threading.Event()

    def _stop(signum, frame):
        click.echo("Stopping after the messages in flight…", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo("Worker started.", err=True)
    run_worker(current_app._get_current_object(), stop, poll_seconds=poll)


COMMANDS = (serve, worker_command,)
