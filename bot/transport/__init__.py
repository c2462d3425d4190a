"""The Telegram transport: webhook server, HTTP clients, update parsing, pacing, retries."""
