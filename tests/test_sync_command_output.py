"""``bettorsense_sync`` on a terminal: whole progress lines, so log lines never run into them."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from bettorsense.management.commands import bettorsense_sync

pytestmark = pytest.mark.django_db(transaction=True)


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_whole_lines(configure, sandbox, monkeypatch):
    monkeypatch.setattr(bettorsense_sync, "PROGRESS_EVERY", 0.0)  # a line for every page
    configure(BATCH_PAGE_SIZE=1000)
    out = Terminal()
    call_command("bettorsense_sync", "--full", stdout=out)
    lines = out.getvalue().splitlines(keepends=True)
    assert "\r" not in out.getvalue()
    assert all(line.endswith("\n") for line in lines)
    progress = [line for line in lines if line.startswith("page ")]
    assert len(progress) >= 2  # the sandbox's players span several pages of 1000
    assert lines[-1].startswith("Full sync succeeded")


def test_progress_lines_are_throttled(configure, sandbox, monkeypatch):
    monkeypatch.setattr(bettorsense_sync, "PROGRESS_EVERY", 3600.0)
    out = Terminal()
    call_command("bettorsense_sync", "--full", stdout=out)
    assert [line for line in out.getvalue().splitlines() if line.startswith("page ")] == [
        out.getvalue().splitlines()[0]
    ]  # the first page only
