"""Suara's services and wiring: configuration, the app factory, i18n, conversations, the web
server, the command line and the local Bot API emulator."""

import os

# python-telegram-bot 22 reports durations such as RetryAfter.retry_after as timedelta when
# asked to; without this it warns on every flood wait.
os.environ.setdefault("PTB_TIMEDELTA", "true")
