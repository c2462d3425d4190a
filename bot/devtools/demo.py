"""`python run_bot.py demo`: the whole loop, offline, in well under a minute.

It starts the local Bot API emulator, runs the real bot against it (python-telegram-bot over
HTTP, a fresh SQLite database) and seeds the example organisation. On day 1 simulated customers
open branch deep links and answer — some in English, some going back, some giving up half way —
while a super admin enrols with a real TOTP code and, in chat, invites the admin of the western
region's branches, who enrols too. The next morning (the demo's clock runs fast: it jumps, nobody
waits) that admin launches a campaign to the region's day-1 customers through `/campaign_new`,
as staff would. Some answer the invitation, some stop part-way, some do not reply; a day later
the reminders go to those who did not finish, and some of them answer. The demo prints what the
admin reads with `/campaign <id>` (invitations, responses and response rate per branch) and
what the super admin reads with `/results`, and keeps the chart next to its database
(`data/demo/`).
"""

from __future__ import annotations

import asyncio
import html
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pyotp

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.devtools.example import BRANCHES, DIGITAL_SURVEY, load_example
from bot.services.access import Role, Scope
from bot.services.i18n import gettext, use_locale
from bot.services.sender import CONTINUE_BUTTON
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
STAFF_ID = 9_000_001  # Dewi, the super admin
ADMIN_ID = 9_000_002  # Budi, admin of the western region's branches
ADMIN_SCOPE = "region:BAR"
SECRET = re.compile(r"\b[A-Z2-7]{32}\b")  # the TOTP key in the enrolment message
STAFF_LINK = re.compile(r"start=(s_[A-Za-z0-9_-]+)")
CAMPAIGN_LINK = re.compile(r"start=(k_\d+)")
MORNING_UTC = 2  # 09:00 in Jakarta and Bandung: outside the quiet hours

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


class DemoClock:
    """The clock every service reads, the customers' conversations too: real time plus a jump
    forward, so a campaign's day passes in a moment."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def jump(self, to: datetime) -> None:
        self.ahead = to - datetime.now(UTC)


def _next_morning(moment: datetime) -> datetime:
    """09:00 in Jakarta on the day after `moment`: at least two hours later, so what
    customers did today is no survey in progress any more."""
    return (moment + timedelta(days=1)).replace(hour=MORNING_UTC, minute=0, second=0)


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
    emulator: BotApiEmulator,
    survey: Survey,
    persona: Persona,
    rng: random.Random,
    spread: float,
) -> tuple[Persona, SimUser, bool]:
    """One customer from the first tap to the outro (or to giving up); whether they finished."""
    user = emulator.user(
        700_000 + persona.number,
        first_name=f"Nasabah {persona.number}",
        language_code=persona.locale,
    )
    await asyncio.sleep(rng.uniform(0, spread))  # customers walk in over a few seconds
    await user.start(f"b_{persona.branch}")
    notice = await user.wait_for(lambda m: any(d.startswith("k:y") for d in m.button_data), WAIT)
    await user.press(notice, next(d for d in notice.button_data if d.startswith("k:y")))
    return persona, user, await _survey(user, survey, persona, rng)


async def _survey(user: SimUser, survey: Survey, persona: Persona, rng: random.Random) -> bool:
    """Answer from the question on screen to the outro, or give up as the persona does; whether
    they finished."""
    outro = localized(survey.outro, persona.locale, survey.default_locale)[:20]

    def is_step(message: SimMessage) -> bool:
        return _is_question(message) or message.body.startswith(outro)

    message = await user.wait_for(is_step, WAIT)
    answered, went_back = 0, False
    while _is_question(message):
        if persona.gives_up_after is not None and answered >= persona.gives_up_after:
            return False
        await asyncio.sleep(rng.uniform(0.05, 0.3))
        back = next((d for d in message.button_data if d.endswith(":b")), None)
        if persona.goes_back and not went_back and back is not None:
            went_back = True
            await user.press(message, back)
        else:
            await _answer(user, survey, message, persona, rng)
            answered += 1
        message = await user.wait_for(is_step, WAIT)
    return True


# -- staff, as they work in chat ---------------------------------------------------------------


async def _enrol(user: SimUser, token: str, clock: DemoClock) -> str:
    """Open a staff invitation and confirm the authenticator with a real TOTP code."""
    await user.start(token)
    key = await user.wait_for(lambda m: SECRET.search(m.body) is not None, WAIT)
    secret = SECRET.search(key.body).group()  # type: ignore[union-attr]
    await user.send_text(pyotp.TOTP(secret).at(clock()))
    await user.wait_for(lambda m: "Enrolment complete" in m.body, WAIT)
    return secret


async def _log_in(user: SimUser, secret: str, clock: DemoClock) -> None:
    await user.send_text(f"/login {pyotp.TOTP(secret).at(clock())}")
    await user.wait_for(lambda m: "logged in as" in m.body, WAIT)


async def _command(user: SimUser, text: str, reply: Callable[[SimMessage], bool]) -> SimMessage:
    await user.send_text(text)
    return await user.wait_for(reply, WAIT)


async def _press(user: SimUser, message: SimMessage, label: str, reply: str) -> SimMessage:
    data = message.button(label)
    assert data is not None, f"no button {label!r} on {message.button_labels}"
    await user.press(message, data)
    return await user.wait_for(lambda m: reply in m.body, WAIT)


async def _launch_campaign(admin: SimUser, survey_key: str) -> tuple[int, str]:
    """`/campaign_new` with its buttons: the survey, the admin's region, now, then launch.
    The campaign's number and the dry run the admin saw before launching."""
    ask = await _command(admin, "/campaign_new", lambda m: "which survey" in m.body)
    ask = await _press(admin, ask, survey_key, "which branch or region")
    ask = await _press(admin, ask, ADMIN_SCOPE, "When should it start")
    confirm = await _press(admin, ask, "Now", "Launch it now?")
    dry_run = next(line for line in confirm.body.splitlines() if "Would invite" in line)
    launched = await _press(admin, confirm, "Launch", "is launched")
    return int(launched.body.split("Campaign ", 1)[1].split()[0]), dry_run


# -- customers and the campaign ----------------------------------------------------------------


def _campaign_messages(user: SimUser) -> list[SimMessage]:
    """The invitation and reminders in a customer's chat: messages with the campaign's link."""
    return [
        m
        for m in user.messages
        if any(
            CAMPAIGN_LINK.search(str(button.get("url", "")))
            for row in (m.reply_markup or {}).get("inline_keyboard") or []
            for button in row
        )
    ]


async def _until(check: Callable[[], bool], what: str) -> None:
    """Wait for something the bot does in its own time (a paced send), up to WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the demo waited in vain for {what}")
        await asyncio.sleep(0.05)


async def _follow_link(
    user: SimUser, survey: Survey, persona: Persona, rng: random.Random, stop_after: int | None
) -> bool:
    """Open the latest campaign message's link and answer (or stop after `stop_after`)."""
    url = _campaign_messages(user)[-1].reply_markup["inline_keyboard"][0][0]["url"]  # type: ignore[index]
    await user.start(CAMPAIGN_LINK.search(url).group(1))  # type: ignore[union-attr]
    return await _survey(
        user, survey, replace(persona, goes_back=False, gives_up_after=stop_after), rng
    )


@dataclass
class CampaignTally:
    """What the simulated customers did with the campaign's messages, as they saw them."""

    invited: int = 0
    finished_first: int = 0
    stopped: int = 0
    silent: int = 0
    reminded_new: int = 0  # reminders to those who never started
    reminded_part: int = 0  # reminders to those who stopped part-way
    reminded_finishers: int = 0
    finished_after: int = 0


async def _campaign_round(
    people: list[tuple[Persona, SimUser]],
    survey: Survey,
    rng: random.Random,
    clock: DemoClock,
    services: Services,
) -> CampaignTally:
    """The invitation: some answer, some stop part-way, some stay silent. A day later the
    reminders reach those who did not finish, and some of them answer."""
    tally = CampaignTally(invited=len(people))
    await _until(lambda: all(_campaign_messages(user) for _, user in people), "the invitations")
    moods = [rng.random() for _ in people]
    outcome = await asyncio.gather(
        *(
            _follow_link(user, survey, persona, random.Random(mood), 1 if mood > 0.5 else None)
            for (persona, user), mood in zip(people, moods, strict=True)
            if mood <= 0.75
        )
    )
    answering = [pair for pair, mood in zip(people, moods, strict=True) if mood <= 0.75]
    finished = {user.id for (_, user), done in zip(answering, outcome, strict=True) if done}
    tally.finished_first = len(finished)
    tally.stopped = len(answering) - len(finished)
    tally.silent = len(people) - len(answering)

    clock.jump(clock() + timedelta(days=1))
    services.sender.wake()  # the reminders are due: no need to wait for the next look
    waiting = [(persona, user) for persona, user in people if user.id not in finished]
    await _until(
        lambda: all(len(_campaign_messages(user)) == 2 for _, user in waiting), "the reminders"
    )
    for persona, user in waiting:
        with use_locale(persona.locale):
            continues = gettext(CONTINUE_BUTTON) in _campaign_messages(user)[-1].button_labels
        if continues:  # worded for those who stopped part-way
            tally.reminded_part += 1
        else:
            tally.reminded_new += 1
    late = await asyncio.gather(
        *(
            _follow_link(user, survey, persona, random.Random(rng.random()), None)
            for persona, user in waiting[::2]
        )
    )
    tally.finished_after = sum(late)
    # Counted last, so a reminder sent to a finisher by mistake would have arrived by now.
    tally.reminded_finishers = sum(
        len(_campaign_messages(user)) - 1 for _, user in people if user.id in finished
    )
    return tally


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"</?[a-z]+>", "", text))


def _fresh(folder: Path) -> None:
    """An empty demo folder: last run's database, key and chart go."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in ("demo.db", "demo.db-wal", "demo.db-shm", "demo.key", CHART):
        (folder / old).unlink(missing_ok=True)


@dataclass
class Story:
    """What the demo prints."""

    finished: int = 0
    number: int = 0
    dry_run: str = ""
    campaign: str = ""
    tally: CampaignTally | None = None
    results: str = ""
    chart: bytes = b""


async def _staff(
    emulator: BotApiEmulator, services: Services, clock: DemoClock
) -> tuple[SimUser, str, SimUser, str]:
    """The super admin enrols and, in chat, invites the western region's admin, who enrols
    too: each with a real TOTP code. The two and their authenticator keys."""
    invited = await services.staff.invite_as_system(Role.SUPER_ADMIN, Scope("all"), "Dewi")
    assert isinstance(invited, Invited)
    dewi = emulator.user(STAFF_ID, "Dewi", language_code="en")
    dewi_secret = await _enrol(dewi, f"s_{invited.token}", clock)
    link = await _command(
        dewi, f"/staff_invite admin {ADMIN_SCOPE}", lambda m: "start=s_" in m.body
    )
    budi = emulator.user(ADMIN_ID, "Budi", language_code="en")
    budi_secret = await _enrol(budi, STAFF_LINK.search(link.body).group(1), clock)  # type: ignore[union-attr]
    return dewi, dewi_secret, budi, budi_secret


async def _story(
    emulator: BotApiEmulator,
    services: Services,
    surveys: tuple[Survey, Survey],
    customers: int,
    rng: random.Random,
    clock: DemoClock,
) -> Story:
    """Day 1 at the branches, then the campaign (the digital banking survey, so yesterday's
    answers to the branch survey do not count as answered already) and its reminders."""
    survey, digital = surveys
    story = Story()
    spread = min(6.0, customers / 20)
    people, (dewi, dewi_secret, budi, budi_secret) = await asyncio.gather(
        asyncio.gather(
            *(
                _customer(emulator, survey, persona, random.Random(rng.random()), spread)
                for persona in _personas(customers, rng)
            )
        ),
        _staff(emulator, services, clock),
    )
    story.finished = sum(done for _, _, done in people)
    clock.jump(_next_morning(clock()))
    await _log_in(budi, budi_secret, clock)

    # Budi invites the region's earlier customers; the reminders go a day later.
    west = {branch.code for branch in BRANCHES if branch.region == "BAR"}
    story.number, story.dry_run = await _launch_campaign(budi, digital.id)
    story.tally = await _campaign_round(
        [(p, u) for p, u, _ in people if p.branch in west], digital, rng, clock, services
    )
    await _log_in(budi, budi_secret, clock)  # the day-old session has ended
    shown = await _command(budi, f"/campaign {story.number}", lambda m: "response rate" in m.body)
    story.campaign = _plain(shown.body)

    await _log_in(dewi, dewi_secret, clock)
    text = await _command(dewi, "/results all 30d", lambda m: "Results for" in m.body)
    story.results = _plain(text.body)
    chart = await dewi.wait_for(lambda m: m.photo is not None, WAIT)
    story.chart = chart.content or b""
    return story


async def run_demo(customers: int = 100, seed: int = 7, directory: str | Path = DEMO_DIR) -> int:
    """Run the demo in `directory` (its database, key and chart are replaced each time)."""
    started = time.monotonic()
    rng = random.Random(seed)
    folder = Path(directory)
    _fresh(folder)
    clock = DemoClock()
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
        services = await open_services(settings, clock)
        try:
            async with services.db.transaction() as connection:
                await load_example(connection)
                branch = await services.catalog.latest(connection, settings.default_survey)
                digital = await services.catalog.latest(connection, DIGITAL_SURVEY)
            assert branch is not None and digital is not None, "surveys/ lacks the examples"
            async with running(services):
                story = await _story(
                    emulator, services, (branch.survey, digital.survey), customers, rng, clock
                )
        finally:
            await services.db.dispose()
            set_keyring(None)
    (folder / CHART).write_bytes(story.chart)
    _print(story, customers, time.monotonic() - started, folder / CHART)
    return 0


def _print(story: Story, customers: int, elapsed: float, chart: Path) -> None:
    tally = story.tally
    assert tally is not None
    reminded = tally.reminded_new + tally.reminded_part
    print(f"\nSuara demo: {customers} simulated customers, {elapsed:.1f} s\n")
    print(
        f"Day 1: {customers} customers open their branch's link; {story.finished} finish the "
        "survey, the others give up part-way. Dewi (super admin) enrols with a TOTP code and "
        f"invites Budi, admin for {ADMIN_SCOPE}, who enrols too."
    )
    print(
        "Day 2, 09:00 WIB: Budi logs in and, with /campaign_new, invites his region's "
        f"customers to the {DIGITAL_SURVEY} survey."
    )
    print(f"  Dry run: {story.dry_run}")
    print(
        f"  Invitations sent to {tally.invited} customers: {tally.finished_first} answer, "
        f"{tally.stopped} stop part-way, {tally.silent} do not reply."
    )
    print(
        f"Day 3, 09:00 WIB: reminders to {reminded} customers who had not finished "
        f"({tally.reminded_new} never started, {tally.reminded_part} stopped part-way); "
        f"reminders to those who had finished: {tally.reminded_finishers}. "
        f"{tally.finished_after} more answer."
    )
    print(f"\nWhat Budi reads after /campaign {story.number}:\n")
    print(story.campaign)
    print("\nWhat Dewi reads after /results all 30d:\n")
    print(story.results)
    print(f"\nThe chart sent with it: {chart}")
