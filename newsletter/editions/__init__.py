"""Editions: what is sent. For now, one synthesis as an email (the send-test message)."""
