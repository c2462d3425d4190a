"""The bookkeeping of one unit of work: which writes it has made, and whether one committed
alone.

`Database.run` makes a unit one transaction on both databases: every write, Core or prepared,
begins it if none has begun. The one exception is a prepared write declared `alone` (a
versioned UPDATE, atomic by itself): as its unit's first write it commits on its own, saving a
BEGIN and a COMMIT on the answer path. The unit is then sealed: any later write raises
`UnitOfWorkError` before it runs, on both databases, so a unit that writes more cannot be
split by mistake and the mistake shows in every test that takes its path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from storage.errors import UnitOfWorkError


@dataclass
class _Unit:
    wrote: bool = False
    sealed: bool = False  # its first write committed alone


_current: ContextVar[_Unit | None] = ContextVar("unit_of_work", default=None)


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Bracket one unit's work (`Database.run`, each unit of a group commit)."""
    token = _current.set(_Unit())
    try:
        yield
    finally:
        _current.reset(token)


def note_write(*, alone: bool = False) -> bool:
    """Record a write about to run; True when it may commit alone (an `alone` write that is
    its unit's first). Outside `Database.run` every write is an ordinary one."""
    unit = _current.get()
    if unit is None:
        return False
    if unit.sealed:
        raise UnitOfWorkError(
            "This unit of work already committed a write alone; a unit that writes more must "
            "not begin with a statement declared alone."
        )
    first, unit.wrote = not unit.wrote, True
    unit.sealed = alone and first
    return unit.sealed
