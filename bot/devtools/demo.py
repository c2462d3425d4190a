"""`python run_bot.py demo`: the whole system, offline, in well under a minute.

It starts the local Bot API emulator, runs the real bot against it (python-telegram-bot over
HTTP, a fresh SQLite database), seeds the example organisation and lets simulated customers
open branch deep links and answer — some in English, some going back, some giving up half way
— then a super admin enrols with a real TOTP code and asks for `/results`: the demo prints
what they read and keeps the chart they receive next to its database (`data/demo/`).
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyotp

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.devtools.example import BRANCHES, load_example
from bot.services.access import Role, Scope
from bot.services.staff import Invited
from bot.wiring.app import open_services
from bot.wiring.config import load_settings
from bot.wiring.runner import running
from bot.wiring.services import Services
from flows.schema import Question as SurveyQuestion
from flows.schema import Survey, localized
from storage.crypto import set_keyring

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:DEMO-TOKEN"
WAIT = 30.0
DEMO_DIR = Path("data/demo")
CHART = "results.png"
STAFF_ID = 9_000_001
SECRET = re.compile(r"\b[A-Z2-7]{32}\b")  # the TOTP key in the enrolment message

# Each branch's customers lean a different way, so the summary has something to say.
MOOD = {"JKT01": 0.85, "BDG01": 0.65, "MKS01": 0.45, "JYP01": 0.7}
COMMENTS = {
    "id": [
        "Pelayanan cepat dan ramah.",
        "Antrean terlalu lama.",
        "Teller sangat membantu.",
        "Ruang tunggu kurang nyaman.",
    ],
    "en": [
        "Quick and friendly service.",
        "The queue was too long.",
        "Very helpful teller.",
        "The waiting area was uncomfortable.",
    ],
}


@dataclass(frozen=True)
class Persona:
    number: int
    branch: str
    locale: str
    goes_back: bool
    gives_up_after: int | None


def _personas(count: int, rng: random.Random) -> list[Persona]:
    codes = [branch.code for branch in BRANCHES]
    return [
        Persona(
            number=n,
            branch=codes[n % len(codes)],
            locale="en" if rng.random() < 0.3 else "id",
            goes_back=rng.random() < 0.15,
            gives_up_after=rng.choice((1, 2, 3)) if rng.random() < 0.1 else None,
        )
        for n in range(count)
    ]


def _is_question(message: SimMessage) -> bool:
    return any(data.startswith("q:") for data in message.button_data)


def _question_on(message: SimMessage, survey: Survey) -> SurveyQuestion:
    """The question a message asks, recognised by its text in either language."""
    body = html.unescape(message.body)
    return next(q for q in survey.questions if any(text in body for text in q.text.values()))


def _same_message(message_id: int, message: SimMessage) -> bool:
    return message.message_id == message_id


def _pick(question_type: str, mood: float, rng: random.Random, scale: int) -> int:
    happy = rng.random() < mood
    if question_type == "nps":
        return rng.choice((9, 10, 9, 8)) if happy else rng.choice((2, 4, 5, 6, 7))
    top = 7 if question_type == "ces" else scale
    return rng.choice((top, top - 1)) if happy else rng.randint(1, max(1, top - 2))


async def _answer(
    user: SimUser, survey: Survey, message: SimMessage, persona: Persona, rng: random.Random
) -> None:
    """Answer the question on `message` the way this persona would."""
    question = _question_on(message, survey)
    mood = MOOD[persona.branch]
    if question.optional and rng.random() < 0.2:
        await user.press(message, next(d for d in message.button_data if d.endswith(":s")))
        return
    kind = str(question.type)
    if kind in ("rating", "nps", "ces"):
        value = _pick(kind, mood, rng, question.scale or 5)
        await user.press(message, next(d for d in message.button_data if d.endswith(f":a:{value}")))
    elif kind in ("choice", "yesno"):
        choices = [d for d in message.button_data if ":a:" in d]
        await user.press(message, rng.choice(choices))
    elif kind == "multi":
        options = [d.rsplit(":", 1)[1] for d in message.button_data if ":t:" in d]
        for option in rng.sample(options, k=min(len(options), rng.randint(1, 2))):
            # Every toggle redraws the keyboard for the session's next version.
            toggle = next(d for d in message.button_data if d.endswith(f":t:{option}"))
            await user.press(message, toggle)
            message = await user.wait_for(partial(_same_message, message.message_id), WAIT)
        await user.press(message, next(d for d in message.button_data if d.endswith(":d")))
    elif kind == "number":
        low = int(question.min if question.min is not None else 0)
        high = int(question.max if question.max is not None else 30)
        await user.send_text(str(rng.randint(low, min(high, low + 30))))
    else:
        await user.send_text(rng.choice(COMMENTS[persona.locale]))


async def _customer(
    emulator: BotApiEmulator, survey: Survey, persona: Persona, rng: random.Random
) -> None:
    """One customer from the first tap to the outro (or to giving up)."""
    user = emulator.user(
        700_000 + persona.number,
        first_name=f"Nasabah {persona.number}",
        language_code=persona.locale,
    )
    await asyncio.sleep(rng.uniform(0, 6))
    await user.start(f"b_{persona.branch}")
    notice = await user.wait_for(lambda m: any(d.startswith("k:y") for d in m.button_data), WAIT)
    await user.press(notice, next(d for d in notice.button_data if d.startswith("k:y")))
    outro = localized(survey.outro, persona.locale, survey.default_locale)[:20]

    def is_step(message: SimMessage) -> bool:
        return _is_question(message) or message.body.startswith(outro)

    message = await user.wait_for(is_step, WAIT)
    answered, went_back = 0, False
    while _is_question(message):
        if persona.gives_up_after is not None and answered >= persona.gives_up_after:
            return
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        back = next((d for d in message.button_data if d.endswith(":b")), None)
        if persona.goes_back and not went_back and back is not None:
            went_back = True
            await user.press(message, back)
        else:
            await _answer(user, survey, message, persona, rng)
            answered += 1
        message = await user.wait_for(is_step, WAIT)


async def _staff_results(emulator: BotApiEmulator, services: Services) -> tuple[str, bytes]:
    """A super admin enrols with a real TOTP code, logs in and asks for `/results`: the demo
    shows exactly what staff read, and the chart they receive."""
    invited = await services.staff.invite_as_system(Role.SUPER_ADMIN, Scope("all"), "Dewi")
    assert isinstance(invited, Invited)
    admin = emulator.user(STAFF_ID, "Dewi", language_code="en")
    await admin.start(f"s_{invited.token}")
    key = await admin.wait_for(lambda m: SECRET.search(m.body) is not None, WAIT)
    secret = SECRET.search(key.body).group()  # type: ignore[union-attr]
    await admin.send_text(pyotp.TOTP(secret).now())
    await admin.wait_for(lambda m: "Enrolment complete" in m.body, WAIT)
    await admin.send_text("/results all 30d")
    text = await admin.wait_for(lambda m: "Results for" in m.body, WAIT)
    chart = await admin.wait_for(lambda m: m.photo is not None, WAIT)
    return text.body, chart.content or b""


def _fresh(folder: Path) -> None:
    """An empty demo folder: last run's database, key and chart go."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in ("demo.db", "demo.db-wal", "demo.db-shm", "demo.key", CHART):
        (folder / old).unlink(missing_ok=True)


async def run_demo(customers: int = 100, seed: int = 7, directory: str | Path = DEMO_DIR) -> int:
    """Run the demo in `directory` (its database, key and chart are replaced each time)."""
    started = time.monotonic()
    rng = random.Random(seed)
    folder = Path(directory)
    _fresh(folder)
    async with BotApiEmulator(token=TOKEN) as emulator:
        settings = load_settings(
            _env_file=None,
            bot_token=TOKEN,
            telegram_api_url=emulator.api_root,
            database_url=f"sqlite+aiosqlite:///{folder}/demo.db",
            key_file=folder / "demo.key",
            surveys_dir=ROOT / "surveys",
            privacy_notice_file=ROOT / "locales" / "privacy_notice.yaml",
            log_level="WARNING",
        )
        services = await open_services(settings)
        try:
            async with services.db.transaction() as connection:
                await load_example(connection)
                pinned = await services.catalog.latest(connection, settings.default_survey)
            assert pinned is not None, "the branch survey is missing from surveys/"
            async with running(services):
                await asyncio.gather(
                    *(
                        _customer(emulator, pinned.survey, persona, random.Random(rng.random()))
                        for persona in _personas(customers, rng)
                    )
                )
                summary, chart = await _staff_results(emulator, services)
        finally:
            await services.db.dispose()
            set_keyring(None)
    (folder / CHART).write_bytes(chart)
    elapsed = time.monotonic() - started
    print(f"\nSuara demo: {customers} simulated customers, {elapsed:.1f} s\n")
    print("What a super admin reads after /results all 30d:\n")
    print(summary)
    print(f"\nThe chart sent with it: {folder / CHART}")
    return 0
