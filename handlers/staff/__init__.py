"""Staff handlers: enrolment and login (access), staff management and audit (manage)."""

from __future__ import annotations

from telegram.ext import Application

from handlers.staff import access, campaigns, manage


def register(app: Application) -> None:  # type: ignore[type-arg]
    """Staff handlers go in before the customer's, so `/start s_…` and codes reach them first."""
    access.register(app, 0)
    manage.register(app, 0)
    campaigns.register(app, 0)
