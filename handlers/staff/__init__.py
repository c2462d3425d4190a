"""Staff handlers: enrolment and login (access), staff management and audit (manage), the
survey library (library)."""

from __future__ import annotations

from telegram.ext import Application

from handlers.staff import access, campaigns, follow_ups, library, lists, manage, results


def register(app: Application) -> None:  # type: ignore[type-arg]
    """Staff handlers go in before the customer's, so `/start s_…` and codes reach them first."""
    access.register(app, 0)
    manage.register(app, 0)
    results.register(app, 0)
    library.register(app, 0)
    lists.register(app, 0)
    campaigns.register(app, 0)
    follow_ups.register(app, 0)
