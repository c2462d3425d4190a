"""`run_bot.py campaign …`: the campaign commands for the bank's schedulers.

The same service and rules as in chat, run as the `system` actor and audited as such. A refusal
prints its one sentence and exits with 2. A running bot sees the change at its next tick.
"""

from __future__ import annotations

import argparse
import html
import json
from typing import Any

from bot.errors import SuaraError
from bot.services.campaigns import CampaignList, CampaignView, Plan
from bot.services.customer_csv import BadList, RefList, parse_refs
from bot.services.i18n import use_locale
from bot.services.staff import Refused
from bot.wiring.config import Settings
from handlers.staff.campaign_render import list_report
from handlers.staff.render import refused


async def run_campaign(settings: Settings, args: argparse.Namespace) -> int:
    from bot.wiring.app import open_services

    command = args.campaign_command
    lists = _read_lists(args.lists or []) if command == "create" else ()
    services = await open_services(settings)
    try:
        campaigns = services.campaigns
        if command == "create":
            plan = Plan(
                args.name,
                args.survey,
                args.scope,
                args.start,
                args.reminders,
                args.expires,
                lists=lists,
            )
            outcome: Any = await campaigns.create(None, plan)
        elif command == "list":
            outcome = await campaigns.list(None)
        else:
            outcome = await getattr(campaigns, command)(None, args.id)
    finally:
        await services.db.dispose()
    if isinstance(outcome, Refused):
        raise SuaraError(html.unescape(refused(outcome, settings.zone)))
    if isinstance(outcome, CampaignList):
        _print_list(outcome, as_json=args.json)
    elif isinstance(outcome, CampaignView):
        if outcome.list_match is not None:
            with use_locale("en"):
                print(html.unescape(list_report(outcome.list_match, shown=1000)))
        if getattr(args, "json", False):
            print(json.dumps(as_dict(outcome), sort_keys=True))
        else:
            _print_view(outcome)
        if command == "create":
            print(outcome.campaign.id)
    return 0


def _read_lists(files: list[str]) -> tuple[RefList, ...]:
    """Each `--list` file read and checked before anything is stored: one sentence if not."""
    from bot.wiring.cli import _read_file

    lists = []
    for file in files:
        try:
            lists.append(parse_refs(_read_file(file)))
        except BadList as error:
            raise SuaraError(f"{file}: {error.reason}") from None
    return tuple(lists)


def as_dict(outcome: CampaignView) -> dict[str, Any]:
    campaign, report = outcome.campaign, outcome.report
    start = campaign.started_at or campaign.start_at
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "survey": outcome.survey_key,
        "scope": campaign.scope,
        "by_list": campaign.by_list,
        "start": None if start is None else start.astimezone(outcome.zone).isoformat(),
        "dry_run": report.dry_run,
        "targeted": report.targeted,
        "excluded": report.excluded,
        "pending": report.pending,
        "sent": report.sent,
        "failed": report.failed,
        "blocked": report.blocked,
        "reminded": report.reminded,
        "responses": report.responses,
        "branches": [
            {"code": b.code, "invited": b.invited, "responses": b.responses}
            for b in report.branches
        ],
    }


def _print_view(outcome: CampaignView) -> None:
    data = as_dict(outcome)
    print(f"Campaign {data['id']} {data['name']!r}: {data['status']}")
    listed = " (its imported list)" if data["by_list"] else ""
    print(
        f"  survey {data['survey']}, scope {data['scope']}{listed}, "
        f"start {data['start'] or 'at launch'}"
    )
    verb = "would invite" if data["dry_run"] else "invited"
    print(f"  {verb} {data['targeted']}; excluded {data['excluded'] or 'none'}")
    if not data["dry_run"]:
        print(
            f"  sent {data['sent']}, pending {data['pending']}, failed {data['failed']}, "
            f"blocked {data['blocked']}, reminded {data['reminded']}, "
            f"responses {data['responses']}"
        )
    for branch in data["branches"]:
        rate = f"{branch['responses'] / branch['invited']:.0%}" if branch["invited"] else "-"
        print(
            f"  {branch['code']}: invited {branch['invited']}, "
            f"responses {branch['responses']}, response rate {rate}"
        )


def _print_list(outcome: CampaignList, *, as_json: bool) -> None:
    rows = [
        {"id": c.id, "name": c.name, "status": c.status, "scope": c.scope}
        for c in outcome.campaigns
    ]
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return
    for row in rows:
        print(f"{row['id']}\t{row['status']}\t{row['scope']}\t{row['name']}")
    if not rows:
        print("No campaigns yet.")
