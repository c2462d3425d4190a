"""The newcomer's first command keeps working: simulated customers, staff enrolled with real
TOTP codes, a campaign launched in chat with its reminders, then what staff read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.devtools.demo import run_demo
from bot.devtools.example import BRANCHES


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in the demo's output"
    return int(found.group(1))


async def test_the_demo_runs_the_whole_loop_and_prints_what_staff_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert await run_demo(customers=12, seed=3, directory=tmp_path) == 0
    printed = capsys.readouterr().out
    assert "Suara demo: 12 simulated customers" in printed
    assert "Results for all branches" in printed
    for branch in BRANCHES:
        assert f"{branch.code} {branch.name}" in printed
    assert "promoters" in printed and "detractors" in printed
    chart = tmp_path / "results.png"
    assert f"The chart sent with it: {chart}" in printed
    assert chart.read_bytes().startswith(b"\x89PNG")

    # The campaign: the western region's admin invites that region's day-1 customers.
    west = [branch.code for branch in BRANCHES if branch.region == "BAR"]
    customers_west = sum(1 for n in range(12) if BRANCHES[n % len(BRANCHES)].code in west)

    # Invitations sent == targeted == every western customer of day 1.
    would = _number(r"Would invite (\d+) customers now", printed)
    invited = _number(r"Invitations sent to (\d+) customers", printed)
    targeted = _number(r"Invited (\d+): sent", printed)
    sent = _number(r"Invited \d+: sent (\d+)", printed)
    assert would == invited == targeted == sent == customers_west

    # Reminders only to those who did not finish, worded for how far they got.
    first = _number(r"customers: (\d+) answer", printed)
    stopped = _number(r"(\d+) stop part-way", printed)
    silent = _number(r"(\d+) do not reply", printed)
    assert first + stopped + silent == invited and stopped and silent
    reminded = _number(r"reminders to (\d+) customers who had not finished", printed)
    assert reminded == _number(r"reminders sent (\d+)", printed) == invited - first
    assert _number(r"\((\d+) never started", printed) == silent
    assert _number(r"(\d+) stopped part-way\)", printed) == stopped
    assert _number(r"reminders to those who had finished: (\d+)", printed) == 0

    # Responses and the response rate, per branch, as the branch admin reads them.
    later = _number(r"(\d+) more answer", printed)
    responses = _number(r"; responses (\d+)", printed)
    assert responses == first + later
    per_branch = re.findall(
        r"^(\w+): invited (\d+), responses (\d+), response rate (\d+)%$", printed, re.M
    )
    assert sorted(code for code, *_ in per_branch) == sorted(west)
    assert sum(int(n) for _, n, _, _ in per_branch) == invited
    assert sum(int(r) for _, _, r, _ in per_branch) == responses
    for _, n, r, rate in per_branch:
        assert int(rate) == round(100 * int(r) / int(n))
