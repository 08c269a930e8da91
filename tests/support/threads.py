"""Several workers doing the same step at once, each in its own app (own session)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def at_once(app_config: dict, step: Callable[[], Any], workers: int = 3) -> list[Any]:
    """Run ``step`` in ``workers`` threads, each in an app context of its own, released
    together by a barrier; their results. Fails (never hangs) if one does not finish."""
    from newsletter import create_app

    barrier = threading.Barrier(workers, timeout=30)
    results: list[Any] = []
    # The apps are made one after another, here: what races is the step. (CPython 3.11's
    # ast.parse, which werkzeug calls to compile each URL rule, is not thread-safe: apps
    # made in threads at once fail now and then with "AST constructor recursion depth
    # mismatch".)
    apps = [create_app(app_config) for _ in range(workers)]

    def worker(app):
        with app.app_context():
            barrier.wait()
            results.append(step())

    threads = [threading.Thread(target=worker, args=(app,), daemon=True) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a worker did not finish"
    assert len(results) == workers, "a worker failed (its error is printed above)"
    return results
