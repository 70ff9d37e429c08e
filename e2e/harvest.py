"""``python -m e2e.harvest FILE``: write every token the fleet shares to FILE, for the leak search.

The sandbox keeps no token strings, so the suite learns the exact values here: a small Django
process with the scenario's settings reads the fleet's entry from the shared cache four times a
second (through :class:`bettorsense.tokens.shared.SharedTokenCache`, which decrypts it) and appends each
new value to FILE (mode 0600, outside every directory the search reads). Tokens a process kept to
itself while the cache was down never reach the cache; the leak search covers them with its
JWT-shaped pattern, and the suite reports how many of the issued tokens were harvested.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import django

_running = True


def _stop(signum: int, frame: FrameType | None) -> None:
    global _running
    _running = False


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "e2e.settings")
    django.setup()
    from bettorsense.cache import CacheUnavailable
    from bettorsense.conf import get_config
    from bettorsense.tokens.shared import SharedTokenCache
    from bettorsense.tokens.token import AccessToken

    signal.signal(signal.SIGTERM, _stop)
    store = SharedTokenCache(get_config())
    seen: set[str] = set()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while _running:
            try:
                token = store.read_token()
            except CacheUnavailable:
                token = None
            if isinstance(token, AccessToken) and token.value not in seen:
                seen.add(token.value)
                os.write(fd, token.value.encode() + b"\n")
            time.sleep(0.25)
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
