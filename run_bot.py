#!/usr/bin/env python3
"""Suara's entry point.

python run_bot.py                 run the bot (polling); needs BOT_TOKEN
python run_bot.py --webhook       serve Telegram's webhook with aiohttp (WEBHOOK_URL)
python run_bot.py demo            the whole system against a local Bot API emulator
python run_bot.py init --example  load the example organisation and print deep links
"""

from bot.wiring.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
