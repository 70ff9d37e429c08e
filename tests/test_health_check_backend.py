"""The optional django-health-check integration, against stand-ins of its two APIs.

django-health-check is not a dependency and is not installed, so these tests put minimal modules
with its names in ``sys.modules``: version 3 (``plugin_dir`` and ``BaseHealthCheckBackend``) and
version 4 (``health_check.base.HealthCheck`` dataclasses with ``run()``).
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import sys
import types

import pytest

import bettorsense.health_check_backend as backend_module
from tests.support import health_states

pytestmark = pytest.mark.django_db


class HealthCheckException(Exception):
    pass


class ServiceWarning(HealthCheckException):
    pass


class ServiceUnavailable(HealthCheckException):
    pass


def exceptions_module() -> types.ModuleType:
    module = types.ModuleType("health_check.exceptions")
    module.HealthCheckException = HealthCheckException
    module.ServiceWarning = ServiceWarning
    module.ServiceUnavailable = ServiceUnavailable
    return module


@pytest.fixture
def version_3(monkeypatch):
    class BaseHealthCheckBackend:
        def __init__(self) -> None:
            self.errors: list[Exception] = []

        def add_error(self, error: Exception) -> None:
            self.errors.append(error)

    class PluginDir:
        def __init__(self) -> None:
            self.registered: list[type] = []

        def register(self, plugin: type) -> None:
            self.registered.append(plugin)

    backends = types.ModuleType("health_check.backends")
    backends.BaseHealthCheckBackend = BaseHealthCheckBackend
    plugins = types.ModuleType("health_check.plugins")
    plugins.plugin_dir = PluginDir()
    modules = {
        "health_check": types.ModuleType("health_check"),
        "health_check.backends": backends,
        "health_check.plugins": plugins,
        "health_check.exceptions": exceptions_module(),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend_module.apps, "is_installed", lambda name: name == "health_check")
    return plugins.plugin_dir


@pytest.fixture
def version_4(monkeypatch):
    @dataclasses.dataclass
    class HealthCheck(abc.ABC):
        @abc.abstractmethod
        def run(self) -> None: ...

    base = types.ModuleType("health_check.base")
    base.HealthCheck = HealthCheck
    for name, module in {
        "health_check": types.ModuleType("health_check"),
        "health_check.base": base,
        "health_check.exceptions": exceptions_module(),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    module = importlib.reload(backend_module)
    yield module
    monkeypatch.undo()
    importlib.reload(backend_module)


def test_nothing_happens_without_django_health_check():
    assert backend_module.register() is False
    assert not hasattr(backend_module, "BettorSense")


def test_version_3_registers_a_check_that_fails_when_down(version_3, configure, sandbox, settings):
    assert backend_module.register() is True
    (check_class,) = version_3.registered
    health_states.token_endpoint_down(configure, sandbox, settings)
    check = check_class()
    check.check_status()
    assert [type(error) for error in check.errors] == [ServiceUnavailable]
    assert "token endpoint is failing" in str(check.errors[0])


def test_version_3_warns_when_degraded_and_passes_when_ok(version_3, configure, sandbox, settings):
    backend_module.register()
    (check_class,) = version_3.registered
    health_states.beat_stale(configure, sandbox, settings)
    degraded = check_class()
    degraded.check_status()
    assert [type(error) for error in degraded.errors] == [ServiceWarning]
    health_states.healthy(configure, sandbox, settings)
    healthy = check_class()
    healthy.check_status()
    assert healthy.errors == []


def test_version_4_check_is_a_view_argument(version_4, configure, sandbox, settings):
    check = version_4.BettorSense()
    health_states.healthy(configure, sandbox, settings)
    check.run()  # ok: no exception
    health_states.breaker_open(configure, sandbox, settings)
    with pytest.raises(ServiceUnavailable, match="circuit breaker is open"):
        check.run()
