"""The newcomer's first command keeps working: simulated customers, then a branch summary."""

from __future__ import annotations

import pytest

from bot.devtools.demo import run_demo
from bot.devtools.example import BRANCHES


async def test_the_demo_prints_every_branch_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_demo(customers=12, seed=3) == 0
    printed = capsys.readouterr().out
    assert "Suara demo: 12 simulated customers" in printed
    for branch in BRANCHES:
        assert f"{branch.code} {branch.name}" in printed
    assert "promoters" in printed and "detractors" in printed
