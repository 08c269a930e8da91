"""The worker's scheduler (APScheduler 3.11) and its thin jobs."""

from newsletter.delivery.service import run_worker

__all__ = ["run_worker"]
