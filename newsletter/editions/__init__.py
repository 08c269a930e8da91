"""Editions: what is sent — special editions and digests, their variants (rendered once
per format), their schedule and state, their audience, and the public web archive."""
