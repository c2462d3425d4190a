"""Staff management and the audit log in chat: parse the arguments, call the service, show.

Wrong arguments get the command's usage; every decision about who may do what is the service's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler

from bot.services.staff import Outcome, Who
from handlers.context import Context
from handlers.staff.commands import BY_NAME
from handlers.staff.common import show, who

# command -> (how many arguments it takes: min, max; the service call)
Call = Callable[[Context, Who, list[str]], Awaitable[Outcome]]
CALLS: dict[str, tuple[int, int, Call]] = {
    "staff": (0, 0, lambda c, w, a: c.services.staff.list_staff(w)),
    "staff_invite": (2, 2, lambda c, w, a: c.services.staff.invite(w, a[0], a[1])),
    "staff_role": (2, 2, lambda c, w, a: c.services.staff.change_role(w, a[0], a[1])),
    "staff_scope": (2, 2, lambda c, w, a: c.services.staff.change_scope(w, a[0], a[1])),
    "staff_off": (1, 1, lambda c, w, a: c.services.staff.deactivate(w, a[0])),
    "staff_on": (1, 1, lambda c, w, a: c.services.staff.reactivate(w, a[0])),
    "staff_reset": (1, 1, lambda c, w, a: c.services.staff.reset(w, a[0])),
    "audit": (0, 1, lambda c, w, a: c.services.staff.audit_rows(w, a[0] if a else None)),
}


Present = Callable[[Update, Context, Any, str], Awaitable[None]]


def command_handler(
    name: str,
    calls: Mapping[str, tuple[int, int, Callable[..., Awaitable[Any]]]],
    present: Present,
) -> Callable[[Update, Context], Awaitable[None]]:
    """A staff command taking between `low` and `high` arguments; any other count is checked
    like the command itself first, so nobody learns the usage of a command they may not run."""
    low, high, call = calls[name]

    async def handle(update: Update, context: Context) -> None:
        args = list(context.args or [])
        person = who(update)
        if not low <= len(args) <= high:
            outcome = await context.services.staff.refuse_usage(person, BY_NAME[name].action)
        else:
            outcome = await call(context, person, args)
        await present(update, context, outcome, name)

    handle.__doc__ = f"Runs /{name}."
    return handle


def register(app: Application, group: int) -> None:  # type: ignore[type-arg]
    for name in CALLS:
        app.add_handler(CommandHandler(name, command_handler(name, CALLS, show)), group)
