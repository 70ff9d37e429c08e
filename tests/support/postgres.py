"""Tests that only PostgreSQL can answer: skipped on another database, failed where services are required."""

from __future__ import annotations

import os

import pytest
from django.db import connection

REQUIRED = os.environ.get("BETTORSENSE_REQUIRE_SERVICES") == "1"


def require_postgresql() -> None:
    if connection.vendor == "postgresql":
        return
    if REQUIRED:
        pytest.fail("PostgreSQL is required (BETTORSENSE_REQUIRE_SERVICES=1): set DATABASE_URL=postgres://...")
    pytest.skip("PostgreSQL only: set DATABASE_URL=postgres://...")
