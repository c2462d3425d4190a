"""Whether the bank follows up on what a customer answered, so the outro may promise it.

Only staff who receive detractor alerts for a branch can follow up; until a branch turns its
alerts on, a customer who finishes there is promised nothing. This is the one place that
decides; the alerts' branch setting will switch it on.
"""

from __future__ import annotations


def follow_up_promised(branch_id: int | None) -> bool:
    """True when staff are alerted about this branch's detractors (no branch is, yet)."""
    del branch_id  # detractor alerts, a per-branch setting, do not exist yet
    return False
