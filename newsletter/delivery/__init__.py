"""Delivery: per-recipient records, workers, outcomes, bounces, tracking."""
