"""Serving the webhook safely: HTTPS straight from the bot with a self-signed certificate that
setWebhook uploads (Telegram then trusts it), a Server header that names no versions, and a
health check that reports failing writes and is cheap to ask often."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from telegram.ext import Application

from bot.devtools.emulator import BotApiEmulator, SimMessage, SimUser
from bot.errors import ConfigError
from bot.transport.operations import operations_app
from bot.transport.web import SERVER_NAME, create_web_app
from bot.wiring.runner import Webhook, running
from bot.wiring.services import Services
from tests.e2e.conftest import free_port
from tests.e2e.test_webhook import SECRET

Consent = Callable[[SimUser, str | None], Awaitable[SimMessage]]


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, as `openssl req -x509` makes."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "webhook.pem", folder / "webhook.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_the_webhook_serves_https_with_an_uploaded_self_signed_certificate(
    emulator: BotApiEmulator, services: Services, consent: Consent, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    hook = Webhook(f"https://127.0.0.1:{port}", "127.0.0.1", port, SECRET, cert, key)
    async with running(services, hook):
        config = emulator.webhook.config
        assert config is not None and config.url.startswith("https://")
        assert config.certificate == cert.read_bytes()  # uploaded with setWebhook
        nina = emulator.user(5001, language_code="id")
        question = await consent(nina, "b_JKT01")  # delivered over HTTPS
        assert "Pertanyaan 1 dari" in question.body
        trusting = ssl.create_default_context(cadata=cert.read_text())
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{hook.public_url}/healthz", ssl=trusting) as response:
                assert response.status == 200
                assert response.headers["Server"] == SERVER_NAME
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(f"{hook.public_url}/healthz")  # nobody else vouches for it
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{port}/healthz")  # no plain HTTP
    assert all(attempt.status == 200 for attempt in emulator.webhook_log)


async def test_a_certificate_that_does_not_load_is_one_sentence(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    hook = Webhook("https://127.0.0.1:8443", "127.0.0.1", 8443, SECRET, cert, tmp_path / "none")
    with pytest.raises(ConfigError, match=r"TLS_KEY .* do not load .*No such file"):
        hook.tls()
    key.write_text("not a key")
    with pytest.raises(ConfigError, match="do not load as a certificate"):
        Webhook("https://x", "127.0.0.1", 8443, SECRET, cert, key).tls()


async def test_the_server_header_names_no_versions(services: Services, hook: Webhook) -> None:
    async with running(services, hook), aiohttp.ClientSession() as http:
        for method, path in (
            ("GET", "/healthz"),
            ("GET", "/nowhere"),
            ("GET", "/telegram"),
            ("POST", "/telegram"),
        ):
            async with http.request(method, hook.public_url + path) as response:
                assert response.headers.get("Server") == SERVER_NAME, (method, path)
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        writer.write(b"NONSENSE\r\n\r\n")  # not even HTTP: the server's own error page
        await writer.drain()
        raw = await reader.read(4096)
        writer.close()
    assert b"aiohttp" not in raw.lower() and b"python" not in raw.lower()


@pytest.fixture
def hook() -> Webhook:
    port = free_port()
    return Webhook(f"http://127.0.0.1:{port}", "127.0.0.1", port, SECRET)


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_the_health_check_reports_failing_writes_and_is_cached_for_a_second(
    services: Services,
    bot: Application,  # type: ignore[type-arg]
    mode: str,
) -> None:
    """The webhook server's, and in polling mode the one on METRICS_PORT."""
    now = [1000.0]
    if mode == "webhook":
        app = create_web_app(bot, SECRET, services=services, clock=lambda: now[0])
    else:
        app = operations_app(services, bot, clock=lambda: now[0])
    server = TestServer(app)
    async with server, aiohttp.ClientSession() as http:
        url = str(server.make_url("/healthz"))

        async def health() -> tuple[int, dict[str, str]]:
            """The status code and the overall verdict (the sender and scheduler aside)."""
            async with http.get(url) as response:
                return response.status, {"status": (await response.json())["status"]}

        assert await health() == (200, {"status": "ok"})
        async with services.db.transaction() as connection:  # reads work, writes do not
            await connection.execute(sa.text("ALTER TABLE meta RENAME TO meta_away"))
        try:
            now[0] += 0.5
            assert await health() == (200, {"status": "ok"})  # the verdict of a moment ago
            now[0] += 0.6
            assert await health() == (503, {"status": "database takes no writes"})
        finally:
            async with services.db.transaction() as connection:
                await connection.execute(sa.text("ALTER TABLE meta_away RENAME TO meta"))
        now[0] += 1.0
        assert await health() == (200, {"status": "ok"})
