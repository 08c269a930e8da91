"""Readers: subscription with double opt-in, preferences, consent events, suppression."""
