"""The outro promises contact only to customers who agreed to it, and nothing without alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.services.conversation import Completed
from flows.schema import load_survey_file
from handlers.render import completed

SURVEY = load_survey_file(
    Path(__file__).parents[1] / "fixtures" / "surveys" / "valid" / "contact_consent.yaml"
)


@pytest.mark.parametrize(
    ("locale", "follow_up", "may_contact", "promise"),
    [
        ("en", False, False, None),
        ("en", False, True, None),
        ("en", True, False, "Our team will review your answers and follow them up."),
        ("en", True, True, "Our team will review your answers and contact you."),
        ("id", True, False, "Tim kami akan mempelajari jawaban Anda dan menindaklanjutinya."),
        ("id", True, True, "Tim kami akan mempelajari jawaban Anda dan menghubungi Anda."),
    ],
)
def test_the_outro_promises_what_staff_can_do(
    locale: str, follow_up: bool, may_contact: bool, promise: str | None
) -> None:
    text = completed(Completed(locale, SURVEY, follow_up=follow_up, may_contact=may_contact)).text
    if promise is None:
        assert "\n\n" not in text.strip()
    else:
        assert text.endswith("\n\n" + promise)
