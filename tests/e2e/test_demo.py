"""The newcomer's first command keeps working: simulated customers, then a branch summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.devtools.demo import run_demo
from bot.devtools.example import BRANCHES


async def test_the_demo_prints_what_staff_read_and_keeps_the_chart(
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
