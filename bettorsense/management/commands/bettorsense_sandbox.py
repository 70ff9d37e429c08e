"""Run the local Bettor Sense sandbox (Auth0 token server + API) in the foreground.

Usage::

    python manage.py bettorsense_sandbox                        # http://127.0.0.1:8765, 600 s tokens
    python manage.py bettorsense_sandbox --port 0               # any free port (printed)
    python manage.py bettorsense_sandbox --token-lifetime 30 --enforce-reuse
    python manage.py bettorsense_sandbox --players 100000 --page-size 1000 --start-day 2025-07-01
    python manage.py bettorsense_sandbox --client other-client:other-secret

It answers ``POST /oauth/token`` (client ``demo-client`` / ``demo-client-secret``), the two
Bettor Sense endpoints under ``/ci/api/rg`` (audience ``mts-insight-tech-non-prod``) and
``/api/rg`` (``mts-insight-tech``), and the ``/_sandbox/`` control API (stats, faults,
revocation, advance-day), to loopback clients only unless ``--allow-remote-control``. The
settings' ``sandbox`` environment points at http://127.0.0.1:8765. Stop it with Ctrl-C.
The same server runs without Django as ``python -m bettorsense.sandbox``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bettorsense.sandbox.cli import add_arguments, build_server, describe
from bettorsense.sandbox.server import SandboxServer


class Command(BaseCommand):
    help = "Run the local stand-in for Sportradar's token server and the Bettor Sense API (foreground)."
    requires_system_checks: list[str] = []  # it needs no database, cache or credentials

    server: SandboxServer | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.server = build_server(options).start()
        except (OSError, ValueError) as err:
            raise CommandError(f"Cannot start the sandbox on {options['host']}:{options['port']}: {err}") from err
        lines = describe(self.server)
        self.stdout.write(self.style.SUCCESS(lines[0]))
        for line in lines[1:]:
            self.stdout.write(line)
        self.stdout.write("Quit with CONTROL-C.")
        try:
            self.server.wait()
        except KeyboardInterrupt:
            self.stdout.write("Stopping the sandbox.")
        finally:
            self.server.stop()
