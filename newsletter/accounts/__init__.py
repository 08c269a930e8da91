"""Who may act on the system besides readers: API tokens now, admin users later."""
