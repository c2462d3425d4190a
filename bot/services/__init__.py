"""Services: the units of work behind every handler; they never touch Telegram."""
