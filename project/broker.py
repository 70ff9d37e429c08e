"""Celery's filesystem broker, with each message file written whole before it appears.

kombu's filesystem transport creates the message file in the queue folder and writes it after,
so a consumer polling the folder can read it empty and the worker dies on the JSON it cannot
decode (celery/kombu#1551). This channel writes into a sibling ``staging`` folder and renames
the file into the queue, which is atomic on one filesystem. Only the demo's embedded broker uses
it; production runs Redis or RabbitMQ.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's own bases disagree on the name of the second argument (message, payload).
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        staging = Path(self.data_folder_out).parent / "staging"
        staged = staging / name
        try:
            staging.mkdir(exist_ok=True)
            staged.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(staged, Path(self.data_folder_out) / name)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to the queue folder") from exc


class Transport(filesystem.Transport):
    Channel = Channel
