"""The scenarios. Each starts its own deployment, runs the load through it, breaks something on
purpose, and records its figures: counts and states are asserted, times are only reported.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .cluster import OVERRIDES, PYTHON, ROOT, STARTUP_TIMEOUT, Cluster, Process, Profile, Secrets, Timing, wait_until
from .load import Load, error_counts, failed, latency_ms, staff_session
from .observe import _LINE as LOG_LINE
from .observe import Monitor, events, status_delta, token_delta
from .results import ScenarioResult

RENEWED_BY_BEAT = r"^Token renewed by beat "
RENEWED_BY_REQUEST = r"^Token renewed by request "
API_401 = r"^API answered 401 to token"


@dataclass
class Context:
    """What every scenario of one run shares: where it writes, the timing, the profile, the secrets."""

    profile: Profile
    workdir: Path
    timing: Timing
    secrets: Secrets = field(default_factory=Secrets)
    clusters: list[Cluster] = field(default_factory=list)  # for the leak search (scenario 7)
    peers: list[Context] = field(default_factory=list)  # every context of the run, for scenario 7
    table_text: str = ""  # the results so far, also searched by scenario 7


@dataclass
class Deployment:
    cluster: Cluster
    load: Load
    monitor: Monitor
    ctx: Context

    @property
    def lifetime(self) -> float:
        return self.ctx.timing.lifetime

    def sleep(self, seconds: float, *, every: float = 2.0, probe: Callable[[], None] | None = None) -> None:
        """Wait, checking that every process is still alive (and calling ``probe``) every few seconds."""
        end = time.time() + seconds
        while True:
            self.cluster.check_alive()
            if probe is not None:
                probe()
            left = end - time.time()
            if left <= 0:
                return
            time.sleep(min(every, left))

    def health_samples(self, seconds: float, label: str, every: float = 1.0) -> list[dict[str, Any]]:
        """The full health body every ``every`` seconds for ``seconds``; each one kept for the leak search."""
        samples: list[dict[str, Any]] = []
        end = time.time() + seconds
        while time.time() < end:
            self.cluster.check_alive()
            status, body = self.cluster.health(label)
            samples.append({**body, "_http": status, "_at": time.time()})
            time.sleep(every)
        return samples


@contextlib.contextmanager
def deployment(
    ctx: Context,
    name: str,
    *,
    enforce_reuse: bool = True,
    threads: int = 4,
    extra_env: dict[str, str] | None = None,
    wrappers: dict[str, tuple[str, ...]] | None = None,
    extra_clients: list[tuple[str, str]] | None = None,
) -> Iterator[Deployment]:
    cluster = Cluster(
        name,
        ctx.profile,
        ctx.workdir,
        ctx.timing,
        ctx.secrets,
        enforce_reuse=enforce_reuse,
        extra_env=extra_env,
        wrappers=wrappers,
        extra_clients=extra_clients,
    )
    ctx.clusters.append(cluster)
    monitor = Monitor(cluster)
    load = Load(cluster.web_url, cluster.bodies, threads=threads, max_seconds=900)
    started = time.time()
    try:
        cluster.start()
        print(
            f"  deployment {name} up in {time.time() - started:.0f} s "
            f"(sandbox :{cluster.sandbox_port}, web :{cluster.web_port}"
            f"{f', redis :{cluster.redis.port}' if cluster.redis else ''})",
            flush=True,
        )
        monitor.start()
        load.login = _load_user(cluster)
        load.start()
        yield Deployment(cluster, load, monitor, ctx)
    finally:
        load.stop()
        monitor.stop()
        with contextlib.suppress(Exception):
            cluster.health("final-health")
            cluster.health("final-health-public", full=False)
        cluster.stop()


def reasons(body: dict[str, Any]) -> set[str]:
    return {reason["code"] for reason in body.get("reasons", [])}


def statuses(samples: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample["status"]] = counts.get(sample["status"], 0) + 1
    return counts


# --- 1. steady state ------------------------------------------------------------------------------


def steady_state(ctx: Context, result: ScenarioResult, lifetimes: float = 5.2) -> None:
    """Five lifetimes of load: one token request per lifetime, all from beat; no 401, no failure."""
    with deployment(ctx, f"s1-{ctx.profile.name}") as d:
        cluster, lifetime = d.cluster, d.lifetime
        before = d.monitor.sample()
        health: list[dict[str, Any]] = []

        def sample_health() -> None:
            if not health or time.time() - health[-1]["_at"] > lifetime / 2:
                status, body = cluster.health("s1-health")
                health.append({**body, "_http": status, "_at": time.time()})

        d.sleep(lifetimes * lifetime, probe=sample_health)
        after = d.monitor.sample()
        calls = d.load.between(before.at, after.at)
        cluster.status_command("s1-status")

    span = (after.at - before.at) / lifetime
    tokens = token_delta(before, after)
    beat = events(cluster, RENEWED_BY_BEAT, ("worker",))
    by_request = events(cluster, RENEWED_BY_REQUEST, ("web", "worker"))
    result.report(
        "load",
        f"{len(calls)} calls over {span:.2f} lifetimes of {lifetime:g} s "
        f"({len(calls) / (after.at - before.at):.0f}/s), {latency_ms(calls)}",
    )
    result.check(
        "token requests in the window",
        f"{tokens['total']} over {span:.2f} lifetimes",
        "lifetimes ± 1",
        abs(tokens["total"] - span) <= 1,
    )
    result.check("token requests refused (reuse rule or other)", tokens["rejected"], "0", tokens["rejected"] == 0)
    whole = cluster.token_stats(cluster.final_stats)
    result.check(
        "token requests on the request path (whole run)",
        f"{len(by_request)} logged 'by request'; the sandbox saw {whole['total']}, beat logged {len(beat)} renewals",
        "0, and every token request the sandbox saw is a beat renewal",
        not by_request and whole["total"] == len(beat),
    )
    api401 = status_delta(before, after, "401")
    logged401 = events(cluster, API_401, ("web",))
    result.check(
        "401s reaching the client/service layer",
        f"{api401} at the sandbox, {len(logged401)} logged",
        "0",
        api401 == 0 and not logged401,
    )
    result.check(
        "failed calls",
        f"{len(failed(calls))} of {len(calls)} {error_counts(calls) or ''}".strip(),
        "0",
        not failed(calls) and len(calls) > 0,
    )
    result.report("health samples (every half lifetime)", statuses(health))


# --- 2. beat stopped ------------------------------------------------------------------------------


def _wait_health(
    cluster: Cluster, label: str, predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Sample the full health body until ``predicate`` holds; the matching body (or None) and every sample."""
    samples: list[dict[str, Any]] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        cluster.check_alive()
        status, body = cluster.health(label)
        body = {**body, "_http": status, "_at": time.time()}
        samples.append(body)
        if predicate(body):
            return body, samples
        time.sleep(0.5)
    return None, samples


def beat_stopped(ctx: Context, result: ScenarioResult, down_lifetimes: float = 2.0) -> None:
    """Beat down for two lifetimes: requests renew lazily under the fleet lock; health says beat is stale."""
    timing = ctx.timing
    stale_after = 3 * timing.refresh_every
    with deployment(ctx, f"s2-{ctx.profile.name}") as d:
        cluster, lifetime = d.cluster, d.lifetime
        d.sleep(lifetime)  # beat renews as usual
        stop = d.monitor.sample()
        cluster.stop_beat()
        down_health = d.health_samples(down_lifetimes * lifetime, "s2-beat-down")
        status_code, status_body = cluster.status_command("s2-status-beat-down")
        restart = d.monitor.sample()
        cluster.start_beat()
        # Back to steady state once beat's tick is recorded again and the health is ok.
        back_body, back_health = _wait_health(
            cluster,
            "s2-beat-back",
            lambda b: b["status"] == "ok" and b["beat"]["age"] is not None and b["beat"]["age"] < stale_after,
            timeout=90,
        )
        back = d.monitor.sample()
        d.sleep(1.5 * lifetime)
        end = d.monitor.sample()
        down_calls = d.load.between(stop.at, restart.at)
        after_calls = d.load.between(back.at, end.at)

    down = token_delta(stop, restart)
    span = (restart.at - stop.at) / lifetime
    lazy = events(cluster, RENEWED_BY_REQUEST, ("web",), stop.at, restart.at)
    beat_down = events(cluster, RENEWED_BY_BEAT, ("worker",), stop.at + 1, restart.at)
    result.report(
        "load while beat is down", f"{len(down_calls)} calls over {span:.2f} lifetimes, {latency_ms(down_calls)}"
    )
    result.check(
        "failed calls while beat is down",
        f"{len(failed(down_calls))} of {len(down_calls)} {error_counts(down_calls) or ''}".strip(),
        "0",
        not failed(down_calls) and len(down_calls) > 0,
    )
    result.check(
        "token requests while beat is down, all lazy renewals by requests",
        f"{down['total']} at the sandbox; {len(lazy)} logged 'by request' "
        f"(pids {sorted({e.pid for e in lazy})}); {len(beat_down)} by beat",
        f"≥ 1 and ≤ ⌈{span:.2f}⌉ (one per lifetime), each one a request-path renewal",
        1 <= down["total"] <= math.ceil(span) and down["total"] == len(lazy) and not beat_down,
    )
    result.check(
        "single flight while beat is down: refused or duplicate token requests",
        f"{down['rejected']} refused, {down['violations']} reuse violations",
        "0 (reuse rule on)",
        down["rejected"] == 0 and down["violations"] == 0,
    )
    judged = [s for s in down_health if s["_at"] > stop.at + stale_after + 2]
    named = [
        s
        for s in judged
        if s["status"] == "degraded"
        and "beat-stale" in reasons(s)
        and any("beat" in r["message"].lower() for r in s["reasons"])
    ]
    result.check(
        "health endpoint while beat is down",
        f"{len(named)} of {len(judged)} samples degraded, naming beat (statuses {statuses(judged)})",
        "all degraded with reason beat-stale",
        bool(judged) and len(named) == len(judged),
    )
    result.check(
        "bettorsense_status --json while beat is down",
        f"exit {status_code}, status {status_body and status_body.get('status')}, "
        f"reasons {sorted(reasons(status_body or {}))}",
        "exit 0, degraded, beat-stale",
        status_code == 0
        and bool(status_body)
        and status_body.get("status") == "degraded"
        and "beat-stale" in reasons(status_body or {}),
    )
    result.check(
        "health once beat is back",
        f"{back_body['status'] if back_body else statuses(back_health)}",
        "ok",
        back_body is not None,
    )
    after = token_delta(back, end)
    lazy_after = events(cluster, RENEWED_BY_REQUEST, ("web",), back.at, end.at)
    beat_after = events(cluster, RENEWED_BY_BEAT, ("worker",), back.at, end.at)
    result.check(
        "steady state again: renewals after beat is back",
        f"{len(beat_after)} by beat, {len(lazy_after)} by requests, {after['rejected']} refused; "
        f"{len(failed(after_calls))} failed calls of {len(after_calls)}",
        "≥ 1 by beat, 0 by requests, 0 refused, 0 failed",
        len(beat_after) >= 1
        and not lazy_after
        and after["rejected"] == 0
        and not failed(after_calls)
        and len(after_calls) > 0,
    )


# --- 3. token endpoint down -----------------------------------------------------------------------

CLEAR_TOKEN_ERRORS = frozenset(
    {
        "TokenBackoff",
        "TokenServerError",
        "TokenTimeout",
        "TokenWaitTimeout",
        "TokenEndpointUnreachable",
    }
)


def token_outage(ctx: Context, result: ScenarioResult, outage_lifetimes: float = 2.0) -> None:
    """The token endpoint answers 503 for a lifetime, then hangs for another; then it comes back."""
    from bettorsense.conf import DEFAULTS

    from .bounds import longest_wait, max_token_requests

    base, maximum = float(DEFAULTS["BACKOFF_BASE"]), float(DEFAULTS["BACKOFF_MAX"])
    read_timeout = float(OVERRIDES["READ_TIMEOUT"])
    timing = ctx.timing
    with deployment(ctx, f"s3-{ctx.profile.name}") as d:
        cluster, lifetime = d.cluster, d.lifetime
        # Start right after a renewal, so the token in hand has nearly a whole lifetime left.
        d.sleep(2)
        issued = d.monitor.sample().tokens["issued"]
        wait_until("a beat renewal", lambda: d.monitor.sample().tokens["issued"] > issued, 2 * lifetime)
        _, before_body = cluster.health("s3-before")
        expires_at = time.time() + float(before_body["token"]["expires_in"])
        usable_until = expires_at - timing.safety
        start = d.monitor.sample()
        cluster.sandbox.add_fault(target="token", kind="status", status=503)
        health = d.health_samples(outage_lifetimes * lifetime / 2, "s3-token-503")
        cluster.sandbox.clear_faults()
        cluster.sandbox.add_fault(target="token", kind="hang")
        health += d.health_samples(outage_lifetimes * lifetime / 2, "s3-token-hang")
        status_code, status_body = cluster.status_command("s3-status-outage")
        cluster.sandbox.clear_faults()
        back = d.monitor.sample()
        _, back_body = cluster.health("s3-back")
        backoff_left = None
        if back_body["token"]["backoff_until"]:
            backoff_left = max(0.0, _epoch(back_body["token"]["backoff_until"]) - back.at)
        failures = sum(back.tokens["rejected"].values()) - sum(start.tokens["rejected"].values())
        limit = longest_wait(failures + 1, base, maximum) + read_timeout + 5
        recovered = wait_until(
            "a successful fresh call after the endpoint is back",
            lambda: next((c for c in d.load.between(back.at, time.time()) if c.ok and c.fresh), None),
            limit,
            interval=0.2,
        )
        d.sleep(lifetime / 2)
        _, after_body = cluster.health("s3-after")
        end = d.monitor.sample()
        calls = d.load.between(start.at, end.at)

    first_failure = next(
        (
            s
            for s in d.monitor.samples
            if s.at >= start.at and sum(s.tokens["rejected"].values()) > sum(start.tokens["rejected"].values())
        ),
        back,
    )
    outage = token_delta(start, back)
    # The first failure happened after the sample before the one that shows it: widen D by one interval.
    duration = back.at - first_failure.at + d.monitor.interval
    bound = max_token_requests(duration, base, maximum)
    served = [c for c in calls if c.started < usable_until - 0.25 and c.started >= start.at]
    after_expiry = [c for c in calls if expires_at + 0.5 <= c.started < back.at]
    fresh_after = [c for c in after_expiry if c.fresh]
    unclear = [c for c in failed(after_expiry) if c.status != 503 or c.error not in CLEAR_TOKEN_ERRORS or not c.message]
    result.check(
        "calls while the token in hand is valid",
        f"{len(failed(served))} failed of {len(served)} {error_counts(served) or ''}".strip(),
        "0 failed",
        not failed(served) and len(served) > 0,
    )
    result.check(
        "fresh calls after the token expired",
        f"{len(failed(fresh_after))} of {len(fresh_after)} failed: {error_counts(fresh_after)}; "
        f"{len(unclear)} without a clear 503",
        "all fail with 503 and a token error class + message",
        len(fresh_after) > 0 and len(failed(fresh_after)) == len(fresh_after) and not unclear,
    )
    fast = [c for c in failed(after_expiry) if c.latency < 0.1]
    result.report(
        "answer time of the failed calls",
        f"{latency_ms(failed(after_expiry))}; {len(fast)} of {len(failed(after_expiry))} under 100 ms "
        f"(the rest waited for a hanging token request, ≤ READ_TIMEOUT {read_timeout:g} s)",
    )
    result.check(
        "token requests during the outage",
        f"{outage['total']} ({outage['rejected']} failed) in {duration:.0f} s from the first failure",
        f"≤ {bound} (1 + max m with 0.8·Σ min({maximum:g}, {base:g}·2^(k-1)) ≤ D)",
        outage["total"] <= bound,
    )
    result.report(
        "for comparison",
        f"without the fleet backoff, beat alone would have asked {duration / timing.refresh_every:.0f} times",
    )
    after_requests = token_delta(back, end)
    delay = recovered.ended - back.at
    result.check(
        "token requests after the endpoint is back",
        f"{after_requests['issued']} issued, {after_requests['rejected']} failed",
        "the first one succeeds (0 failed)",
        after_requests["rejected"] == 0 and after_requests["issued"] >= 1,
    )
    result.check(
        "recovery after the endpoint is back",
        f"first good fresh call {delay:.1f} s later; backoff left at return "
        f"{'none' if backoff_left is None else f'{backoff_left:.1f} s'}",
        f"within one backoff period (≤ {limit:.0f} s: longest backoff + one hung request)",
        delay <= limit,
    )
    recovered_calls = d.load.between(recovered.ended, end.at)
    result.check(
        "calls after recovery",
        f"{len(failed(recovered_calls))} failed of {len(recovered_calls)}",
        "0 failed",
        not failed(recovered_calls) and len(recovered_calls) > 0,
    )
    judged = [s for s in health if s["_at"] > expires_at + 1]
    down = [s for s in judged if s["status"] == "down" and "token-unavailable" in reasons(s)]
    result.check(
        "health after the token expired",
        f"{len(down)} of {len(judged)} samples down (token-unavailable); {statuses(judged)}",
        "all down, token-unavailable",
        bool(judged) and len(down) == len(judged),
    )
    early = [s for s in health if s["_at"] < usable_until - 0.5]
    result.report("health before the token expired", statuses(early))
    result.check(
        "bettorsense_status during the outage",
        f"exit {status_code}, {status_body and status_body.get('status')}",
        "exit 1, down",
        status_code == 1 and bool(status_body) and status_body.get("status") == "down",
    )
    result.check("health after recovery", after_body["status"], "ok", after_body["status"] == "ok")


def huge_retry_after(ctx: Context, result: ScenarioResult) -> None:
    """The token endpoint answers 429 with ``Retry-After: 10^12`` once, then heals, under load.

    The fleet's backoff is capped at ``BACKOFF_MAX``: it recovers within that plus one beat interval
    (and one token request), health keeps answering, and no call waits longer than a call's deadline.
    """
    from bettorsense.conf import DEFAULTS

    maximum = float(DEFAULTS["BACKOFF_MAX"])
    connect, read = float(OVERRIDES["CONNECT_TIMEOUT"]), float(OVERRIDES["READ_TIMEOUT"])
    # The longest a call may take: waiting for another process's renewal, one token request, the API call.
    deadline = float(DEFAULTS["TOKEN_WAIT_TIMEOUT"]) + connect + read + float(DEFAULTS["RETRY_BUDGET"]) + read
    timing = ctx.timing
    with deployment(ctx, f"s8-{ctx.profile.name}") as d:
        cluster, lifetime = d.cluster, d.lifetime
        start = d.monitor.sample()

        def refusals() -> int:
            return sum(d.monitor.sample().tokens["rejected"].values()) - sum(start.tokens["rejected"].values())

        cluster.sandbox.add_fault(target="token", kind="retry_after", value="1000000000000")
        wait_until("a token request answered 429", lambda: refusals() > 0, 2 * lifetime, interval=0.1)
        cluster.sandbox.clear_faults()
        healed = time.time()
        answers = []
        for index in range(5):
            code, body = cluster.health(f"s8-backoff-{index}")
            answers.append((code, body))
            d.sleep(1)
        backoff_left = None
        first_body = answers[0][1]
        if first_body.get("token", {}).get("backoff_until"):
            backoff_left = max(0.0, _epoch(first_body["token"]["backoff_until"]) - healed)
        limit = maximum + timing.refresh_every + connect + read
        # The token in hand outlives the heal by a little; the fleet then fails fast until the backoff ends.
        expired = wait_until(
            "a call failing once the token in hand expired",
            lambda: next((c for c in d.load.between(healed, time.time()) if not c.ok), None),
            lifetime,
            interval=0.2,
        )
        recovered = wait_until(
            "a successful fresh call after the backoff",
            lambda: next((c for c in d.load.between(expired.started, time.time()) if c.ok and c.fresh), None),
            limit + 5,
            interval=0.2,
        )
        d.sleep(lifetime / 2)
        _, after_body = cluster.health("s8-after")
        end = d.monitor.sample()
        calls = d.load.between(start.at, end.at)

    delay = recovered.ended - healed
    result.check(
        "backoff set by Retry-After 10^12",
        "none" if backoff_left is None else f"{backoff_left:.1f} s left just after the 429",
        f"≤ BACKOFF_MAX ({maximum:g} s)",
        backoff_left is None or backoff_left <= maximum + 1,
    )
    result.check(
        "health while the fleet backs off",
        ", ".join(f"{code} {body.get('status')}" for code, body in answers),
        "every answer 200 or 503 with a status (never a 500)",
        all(code in (200, 503) and body.get("status") in ("ok", "degraded", "down") for code, body in answers),
    )
    result.check(
        "recovery after the endpoint healed",
        f"first good fresh call {delay:.1f} s later (calls failing from {expired.started - healed:.1f} s)",
        f"≤ {limit:.0f} s (BACKOFF_MAX + one beat interval + one token request)",
        delay <= limit,
    )
    slowest = max((c.latency for c in calls), default=0.0)
    result.check(
        "longest call during the scenario",
        f"{slowest:.2f} s over {len(calls)} calls ({len(failed(calls))} failed: {error_counts(failed(calls))})",
        f"≤ {deadline:g} s (a call's deadline)",
        bool(calls) and slowest <= deadline,
    )
    after = d.load.between(recovered.ended, end.at)
    result.check(
        "calls after recovery",
        f"{len(failed(after))} failed of {len(after)}",
        "0 failed",
        not failed(after) and len(after) > 0,
    )
    result.check("health after recovery", after_body["status"], "ok", after_body["status"] == "ok")


# --- 9. rolling key rotation -------------------------------------------------------------------

MALFORMED_ENTRY = r"^Cache entry of kind "


def key_rotation(ctx: Context, result: ScenarioResult, lifetimes: float = 3.0) -> None:
    """A rolling ``SECRET_KEY`` rotation: the Celery worker and beat restart on the new key, the old
    one in ``SECRET_KEY_FALLBACKS``, while the four web workers stay on the old key alone.

    Beat (new key) renews and the web workers (old key) read what it seals; beat reads the token the
    old beat sealed. Under the reuse rule, a process that could not read the fleet's token would
    ask for another and be refused: one token request per lifetime, none refused, no failed call.
    """
    with deployment(ctx, f"s9-{ctx.profile.name}") as d:
        cluster, lifetime = d.cluster, d.lifetime
        d.sleep(lifetime / 2)
        rotated_at = time.time()
        cluster.extra_env = {
            "SECRET_KEY": ctx.secrets.rotated_secret_key,
            "SECRET_KEY_FALLBACKS": ctx.secrets.secret_key,
        }
        ready = cluster.log_text("worker").count(" ready.")
        cluster.stop_beat()
        cluster.processes.pop("worker").stop()
        cluster.start_worker()
        cluster.start_beat()
        wait_until(
            "the Celery worker on the new key",
            lambda: cluster.log_text("worker").count(" ready.") > ready,
            STARTUP_TIMEOUT,
        )
        before = d.monitor.sample()
        d.sleep(lifetimes * lifetime)
        after = d.monitor.sample()
        calls = d.load.between(before.at, after.at)
        _, body = cluster.health("s9-health")

    span = (after.at - before.at) / lifetime
    tokens = token_delta(before, after)
    result.report(
        "rotation",
        f"worker and beat restarted on the new key {before.at - rotated_at:.1f} s after the rotation began; "
        f"4 web workers on the old key throughout",
    )
    result.check(
        "token requests with half the fleet on each key",
        f"{tokens['total']} over {span:.2f} lifetimes",
        "lifetimes ± 1 (no extra request)",
        abs(tokens["total"] - span) <= 1,
    )
    result.check(
        "token requests refused (reuse rule or other)",
        f"{tokens['rejected']} refused, {tokens['violations']} reuse violations",
        "0",
        tokens["rejected"] == 0 and tokens["violations"] == 0,
    )
    renewals = events(cluster, RENEWED_BY_BEAT, ("worker",), before.at, after.at)
    by_request = events(cluster, RENEWED_BY_REQUEST, ("web", "worker"), before.at, after.at)
    result.check(
        "who renewed in the window",
        f"{len(renewals)} by beat (new key), {len(by_request)} by requests",
        "beat only",
        len(renewals) == tokens["total"] and not by_request,
    )
    malformed = events(cluster, MALFORMED_ENTRY, ("web", "worker", "beat"))
    result.check("entries refused as malformed (whole run)", len(malformed), "0", not malformed)
    api401 = status_delta(before, after, "401")
    result.check("401s", api401, "0", api401 == 0)
    result.check(
        "failed calls",
        f"{len(failed(calls))} of {len(calls)} {error_counts(calls) or ''}".strip(),
        "0",
        not failed(calls) and len(calls) > 0,
    )
    result.check("health at the end", body.get("status"), "ok", body.get("status") == "ok")


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- 4. Redis stopped -----------------------------------------------------------------------------


def redis_outage(ctx: Context, result: ScenarioResult, outage_lifetimes: float = 1.3) -> None:
    """The dedicated Redis (cache and broker) stops for more than a lifetime, then comes back empty.

    While the cache is down each process keeps or fetches a token of its own: with 4 web workers that
    is up to 4 tokens per lifetime, which the sandbox's reuse rule would refuse (any token request while
    the client's newest token has more than 20% of its life left). The rule is therefore off from the
    moment Redis stops until every token of the outage has expired (one lifetime after Redis is back),
    then on again: from then on a process that had not gone back to the shared token would be refused.
    """
    if ctx.profile.redis is False:
        raise RuntimeError("scenario 4 needs the services profile (Redis)")
    from .cluster import WEB_WORKERS

    timing = ctx.timing
    with deployment(ctx, f"s4-{ctx.profile.name}") as d:
        cluster, lifetime = d.cluster, d.lifetime
        assert cluster.redis is not None
        # (a) A quick restart just after a renewal, reuse rule on: Redis comes back empty while every
        # process holds the same valid token. Nobody may ask for a new one before its window.
        issued = d.monitor.sample().tokens["issued"]
        wait_until("a beat renewal", lambda: d.monitor.sample().tokens["issued"] > issued, 2 * lifetime)
        # Every process re-reads the cache at least every 0.5 s inside the window: give them 2 s to have
        # the new token. (Within those 0.5 s a process still holding the old token, in its window,
        # finds the cache empty and must renew: a reuse violation nobody can avoid; see the README.)
        time.sleep(2)
        flush = d.monitor.sample()
        cluster.redis.stop()
        cluster.redis.start()
        d.sleep(lifetime - timing.window - 4)
        flushed = d.monitor.sample()
        flush_calls = d.load.between(flush.at, flushed.at)
        # (b) The outage.
        cluster.sandbox.set_config(enforce_reuse=False)
        down = d.monitor.sample()
        cluster.redis.stop()
        health = d.health_samples(outage_lifetimes * lifetime, "s4-redis-down")
        status_code, status_body = cluster.status_command("s4-status-redis-down")
        up = d.monitor.sample()
        cluster.redis.start()
        back_body, back_health = _wait_health(cluster, "s4-redis-back", lambda b: b["status"] == "ok", timeout=60)
        d.sleep(max(0.0, up.at + lifetime + 1 - time.time()))  # every token of the outage has expired
        strict = d.monitor.sample()
        cluster.sandbox.set_config(enforce_reuse=True)
        d.sleep(1.5 * lifetime)
        end = d.monitor.sample()
        _, end_body = cluster.health("s4-end")
        outage_calls = d.load.between(down.at, up.at)
        converging_calls = d.load.between(up.at, strict.at)
        strict_calls = d.load.between(strict.at, end.at)

    quick = token_delta(flush, flushed)
    result.check(
        "quick Redis restart (empty) right after a renewal: token requests before the window",
        f"{quick['total']} ({quick['violations']} reuse violations); "
        f"{len(failed(flush_calls))} failed calls of {len(flush_calls)}",
        "0: the fleet puts its token back (reuse rule on)",
        quick["total"] == 0 and not failed(flush_calls),
    )
    outage = token_delta(down, up)
    span = (up.at - down.at) / lifetime
    per_process_limit = WEB_WORKERS * (math.ceil(span) + 1)
    result.check(
        "failed calls while Redis is down",
        f"{len(failed(outage_calls))} of {len(outage_calls)} {error_counts(outage_calls) or ''}".strip(),
        "0 (process-local tokens)",
        not failed(outage_calls) and len(outage_calls) > 0,
    )
    result.check(
        "token requests while Redis is down",
        f"{outage['total']} over {span:.2f} lifetimes ({outage['rejected']} refused)",
        f"≤ {per_process_limit} (each of {WEB_WORKERS} web workers at most once per lifetime, +1)",
        outage["total"] <= per_process_limit and outage["rejected"] == 0,
    )
    judged = [s for s in health if s["_at"] > down.at + 1]
    named = [s for s in judged if s["status"] == "degraded" and "cache-unreachable" in reasons(s)]
    result.check(
        "health endpoint while Redis is down",
        f"{len(named)} of {len(judged)} degraded with cache-unreachable ({statuses(judged)})",
        "all degraded, cache-unreachable",
        bool(judged) and len(named) == len(judged),
    )
    result.check(
        "bettorsense_status while Redis is down",
        f"exit {status_code}, {status_body and status_body.get('status')}",
        "exit 0, degraded",
        status_code == 0 and bool(status_body) and status_body.get("status") == "degraded",
    )
    converge = token_delta(up, strict)
    result.check(
        "after Redis is back: health",
        back_body["status"] if back_body else statuses(back_health),
        "ok",
        back_body is not None,
    )
    result.check(
        "after Redis is back: token requests until the outage's tokens expired",
        f"{converge['total']} in {(strict.at - up.at) / lifetime:.2f} lifetimes",
        "≤ 2 (the shared token's renewal, + a process renewing before it re-read the cache)",
        converge["total"] <= 2,
    )
    result.check(
        "after Redis is back: failed calls",
        f"{len(failed(converging_calls))} of {len(converging_calls)} {error_counts(converging_calls) or ''}".strip(),
        "0",
        not failed(converging_calls),
    )
    steady = token_delta(strict, end)
    steady_span = (end.at - strict.at) / lifetime
    lazy = events(cluster, RENEWED_BY_REQUEST, ("web",), strict.at, end.at)
    result.check(
        "one shared token again (reuse rule back on)",
        f"{steady['total']} token requests over {steady_span:.2f} lifetimes, {steady['violations']} "
        f"reuse violations, {steady['rejected']} refused, {len(lazy)} by requests",
        "lifetimes ± 1, 0 violations, 0 refused, 0 by requests",
        abs(steady["total"] - steady_span) <= 1 and steady["violations"] == 0 and steady["rejected"] == 0 and not lazy,
    )
    result.check(
        "calls once converged",
        f"{len(failed(strict_calls))} failed of {len(strict_calls)}",
        "0",
        not failed(strict_calls) and len(strict_calls) > 0,
    )
    result.report("health at the end", end_body["status"])
    result.report("token timing", f"window {timing.window:g} s, beat every {timing.refresh_every:g} s")


# --- 5. API faults --------------------------------------------------------------------------------


def api_faults(ctx: Context, result: ScenarioResult) -> None:
    """503 and 429 bursts, a token revoked server-side, and an outage that opens the circuit breaker."""
    from bettorsense.conf import DEFAULTS

    from .cluster import WEB_WORKERS

    max_retries = int(DEFAULTS["MAX_RETRIES"])
    cooldown = float(OVERRIDES["BREAKER_COOLDOWN"])
    threshold = int(DEFAULTS["BREAKER_THRESHOLD"])
    with deployment(ctx, f"s5-{ctx.profile.name}") as d:
        cluster = d.cluster
        sandbox = cluster.sandbox
        d.sleep(3)

        def burst(count: int, **fault: Any) -> None:
            for _ in range(count):
                sandbox.add_fault(target="profile", times=max_retries, **fault)
                wait_until("the burst to be used up", lambda: not sandbox.faults(), 60)
                time.sleep(1)
            d.sleep(5)  # the retries in flight finish

        # (a) bursts of 503, each no longer than the retries a single call may make
        a0 = d.monitor.sample()
        burst(4, kind="status", status=503)
        a1 = d.monitor.sample()
        calls = d.load.between(a0.at, a1.at)
        retried = events(cluster, r"^API answered 503; retry", ("web",), a0.at, a1.at)
        answered = status_delta(a0, a1, "503")
        result.check(
            "503 bursts (4 x 3): failed calls",
            f"{len(failed(calls))} of {len(calls)}; {answered} 503s answered, {len(retried)} retries logged",
            "0 failed; 12 503s, each retried",
            not failed(calls) and answered == 12 and len(retried) == 12,
        )

        # (b) bursts of 429 with Retry-After: 2
        b0 = d.monitor.sample()
        burst(3, kind="retry_after", retry_after=2)
        b1 = d.monitor.sample()
        calls = d.load.between(b0.at, b1.at)
        retried = events(cluster, r"^API answered 429; retry", ("web",), b0.at, b1.at)
        delays = [float(m.group(1)) for e in retried if (m := re.search(r" in ([\d.]+) s$", e.message))]
        answered = status_delta(b0, b1, "429")
        result.check(
            "429 bursts with Retry-After: 2 (3 x 3)",
            f"{len(failed(calls))} failed of {len(calls)}; {answered} 429s, {len(retried)} retries, "
            f"shortest wait {min(delays, default=0):.2f} s",
            "0 failed; 9 429s, each retried after ≥ 2 s",
            not failed(calls) and answered == 9 and len(retried) == 9 and min(delays, default=0) >= 2.0,
        )

        # (c) the token revoked server-side
        c0 = d.monitor.sample()
        revoked = sandbox.revoke_tokens()
        wait_until(
            "a new token after the revocation", lambda: d.monitor.sample().tokens["issued"] > c0.tokens["issued"], 30
        )
        d.sleep(float(DEFAULTS["LOCAL_RECHECK"]) + 3)  # every process has re-read the cache since
        c1 = d.monitor.sample()
        calls = d.load.between(c0.at, c1.at)
        renewals = token_delta(c0, c1)
        logged = events(cluster, API_401, ("web",), c0.at, c1.at)
        per_pid: dict[int, int] = {}
        for event in logged:
            per_pid[event.pid] = per_pid.get(event.pid, 0) + 1
        refused = status_delta(c0, c1, "401")
        result.check(
            "token revoked server-side: renewals",
            f"{revoked} revoked; {renewals['total']} token request(s), {renewals['rejected']} refused",
            "exactly 1",
            renewals["total"] == 1 and renewals["rejected"] == 0,
        )
        result.check(
            "token revoked server-side: 401s and retries",
            f"{refused} 401s at the sandbox, {len(logged)} logged 'renewing it once' (per process "
            f"{sorted(per_pid.values())}); {len(failed(calls))} failed of {len(calls)}",
            f"each 401 retried once, ≤ 1 per web worker (≤ {WEB_WORKERS}); 0 failed",
            refused == len(logged)
            and 1 <= refused <= WEB_WORKERS
            and max(per_pid.values(), default=0) <= 1
            and not failed(calls),
        )

        # (d) an API outage: the breaker opens, calls answer fast, the sandbox hears nothing; then it closes
        d0 = d.monitor.sample()
        sandbox.add_fault(target="profile", kind="status", status=503)
        open_body, _ = _wait_health(cluster, "s5-breaker", lambda b: b["breaker"] == "open", timeout=90)
        if open_body is None:
            raise RuntimeError("the breaker did not open")
        opened = open_body["_at"]
        # Calls in flight when it opened finish their retries (≤ ~4 s); each process re-reads the
        # shared state within 1 s. The quiet window ends before the cool-down can have ended.
        quiet = (opened + 6.0, opened - 1.0 + cooldown)
        open_health = d.health_samples(max(0.0, quiet[1] - time.time()), "s5-breaker-open")
        heard = [r for r in sandbox.requests(1000) if quiet[0] <= r["at"] < quiet[1]]
        quiet_calls = d.load.between(*quiet)
        sandbox.clear_faults()
        closed_body, _ = _wait_health(
            cluster, "s5-breaker-closing", lambda b: b["breaker"] == "closed", timeout=cooldown + 30
        )
        closed_at = time.time()
        d.sleep(4)
        d1 = d.monitor.sample()
        after_calls = d.load.between(closed_at + 1, d1.at)
        before_open = d.load.between(d0.at, opened)

    result.report(
        "calls before the breaker opened",
        f"{len(failed(before_open))} failed of {len(before_open)}: "
        f"{error_counts(before_open)}; {latency_ms(failed(before_open))}",
    )
    fresh_quiet = [c for c in quiet_calls if c.fresh]
    fast_fail = [
        c
        for c in fresh_quiet
        if c.status == 503 and c.error == "ServiceUnavailable" and "circuit breaker" in (c.message or "")
    ]
    stale = [c for c in quiet_calls if c.ok and c.source == "stale"]
    other = [c for c in fresh_quiet if c not in fast_fail and c not in stale]
    result.check(
        "requests reaching the sandbox while the breaker is open",
        f"{len(heard)} in the {quiet[1] - quiet[0]:.1f} s quiet window",
        "0",
        not heard,
    )
    result.check(
        "fresh calls while the breaker is open",
        f"{len(fast_fail)} answered 503 'circuit breaker is open', {len(stale)} served the stale copy "
        f"(200, source stale), {len(other)} other {error_counts(other) or ''}".strip(),
        f"all one of the two (threshold {threshold}, cool-down {cooldown:g} s)",
        bool(fresh_quiet) and not other,
    )
    result.report(
        "answer time while open", f"breaker refusals: {latency_ms(fast_fail)}; stale copies: {latency_ms(stale)}"
    )
    cached = [c for c in quiet_calls if not c.fresh and c.ok and c.source == "cache"]
    result.report("not-fresh calls while open", f"{len(cached)} served from the profile cache")
    down = [s for s in open_health if s["status"] == "down" and "breaker-open" in reasons(s)]
    result.check(
        "health while the breaker is open",
        f"{len(down)} of {len(open_health)} down (breaker-open)",
        "all",
        bool(open_health) and len(down) == len(open_health),
    )
    result.check(
        "breaker closed after the API is back",
        closed_body["breaker"] if closed_body else "not closed",
        "closed",
        closed_body is not None,
    )
    result.check(
        "calls after it closed",
        f"{len(failed(after_calls))} failed of {len(after_calls)}",
        "0",
        not failed(after_calls) and len(after_calls) > 0,
    )


# --- 6. bad input at the demo's edge --------------------------------------------------------------

_PROFILE_UNAVAILABLE = {"PlayerNotFound", "ProfileNotCreated", "ProfileInactive"}


def bad_input(ctx: Context, result: ScenarioResult) -> None:
    """Fuzzed account ids, sent byte for byte: 4xx answers only, and never a wrong request at the sandbox."""
    from collections import Counter

    from .fuzz import LOAD_ACCOUNT, cases, send

    with deployment(ctx, f"s6-{ctx.profile.name}") as d:
        cluster = d.cluster
        d.sleep(2)
        start = time.time()
        recorded: dict[tuple[Any, ...], dict[str, Any]] = {}

        def collect() -> None:  # the sandbox keeps its last 1000 requests; the load adds ~100/s
            for request in cluster.sandbox.requests(1000):
                if request["at"] >= start:
                    recorded[(request["at"], request["path"], request["status"])] = request

        answers = []
        session_id = staff_session(cluster.web_url, *_load_user(cluster, "e2e-fuzz")).cookies["sessionid"]
        for index, case in enumerate(cases()):
            answer = send(cluster.web_port, case, session_id=session_id)
            answers.append((case, answer))
            cluster.save_body(
                f"s6-fuzz-{index}",
                answer.status,
                {"request": case.target[:300]},
                answer.raw_head + b"\n\n" + answer.body,
            )
            if index % 20 == 0:
                collect()
        time.sleep(1)
        collect()
        calls = d.load.between(start, time.time())

    mine = [r for r in recorded.values() if not (r["route"] == "profile" and LOAD_ACCOUNT.match(r["account_id"] or ""))]
    wrong = [
        r
        for r in mine
        if r["route"] != "profile"
        or r["environment"] != "integration"
        or (r["bookmaker_id"], r["sub_bookmaker_id"]) != ("123", "456")
    ]
    expected = Counter(case.expected_account() for case, _ in answers if case.expected_account() is not None)
    received = Counter(r["account_id"] for r in mine if r["route"] == "profile")
    kinds: Counter[str] = Counter()
    bad: list[str] = []
    for case, answer in answers:
        kind = _classify(answer)
        kinds[kind] += 1
        reached = case.expected_account() is not None
        if kind == "301 append-slash" and answer.header("location") == case.target.decode() + "/":
            continue  # Django's APPEND_SLASH: the same path with its missing slash, nothing else
        if not 400 <= answer.status < 500:
            bad.append(f"{answer.status} for {case.note}")
        elif reached and kind.split(" ")[1] not in _PROFILE_UNAVAILABLE:
            bad.append(f"{kind} for {case.note} (should have been asked of the API)")
        elif not reached and kind.split(" ")[1] in _PROFILE_UNAVAILABLE:
            bad.append(f"{kind} for {case.note} (should not have reached the API)")
    result.report(
        "cases",
        f"{len(answers)} ({sum(expected.values())} valid ids that reach the API, "
        f"{len(answers) - sum(expected.values())} refused at the edge)",
    )
    result.check(
        "answers",
        f"{dict(sorted(kinds.items()))}",
        "4xx only (view JSON with error + message, Django 403/404/405, gunicorn 400/414); "
        "a 301 only for a missing final slash",
        not bad,
    )
    for line in bad[:10]:
        print(f"      {line}")
    server_errors = [line for line in bad if line[:1] in "05"]
    result.check("5xx or no answer", len(server_errors), "0", not server_errors)
    result.check("requests to a wrong route, environment or bookmaker at the sandbox", len(wrong), "0", not wrong)
    missing, extra = expected - received, received - expected
    result.check(
        "account ids received by the sandbox vs. those sent (decoded as Django does)",
        f"{sum(received.values())} received; {sum(missing.values())} missing, {sum(extra.values())} unexpected",
        "exactly the valid ids, each once",
        not missing and not extra,
    )
    for account in list(missing)[:5]:
        print(f"      missing {account!r}")
    for account in list(extra)[:5]:
        print(f"      unexpected {account!r}")
    result.check("load calls meanwhile", f"{len(failed(calls))} failed of {len(calls)}", "0", not failed(calls))


def _classify(answer: Any) -> str:
    import json

    if answer.status == 0:
        return "0 no-answer"
    if "json" in answer.content_type:
        try:
            body = json.loads(answer.body)
        except ValueError:
            return f"{answer.status} bad-json"
        if isinstance(body, dict) and body.get("error") and body.get("message"):
            return f"{answer.status} {body['error']}"
        return f"{answer.status} json-without-error"
    if answer.status == 405:
        return "405 method-not-allowed"
    if answer.status == 403 and b"CSRF" in answer.body:
        return "403 csrf-refused"
    if answer.status == 301:
        return "301 append-slash"
    if b"Request Line is too large" in answer.body or b"Invalid" in answer.body or b"Bad Request" in answer.body:
        return f"{answer.status} gunicorn-refused"
    if b"Not Found" in answer.body:
        return f"{answer.status} no-route"
    return f"{answer.status} other"


# --- 7. leaks -------------------------------------------------------------------------------------


def leak_search(ctx: Context, result: ScenarioResult) -> None:
    """Search every log and every answer of this run (all scenarios and profiles) for secrets and tokens."""
    import secrets as random_secrets

    import requests

    from .leaks import corpus, scan, secret_needles, token_needles
    from .load import active_players

    canary_id = f"canary-{random_secrets.token_hex(4)}"
    canary_secret = f"canary-secret-{random_secrets.token_hex(20)}"
    passwords: list[str] = []
    with deployment(ctx, f"s7-{ctx.profile.name}") as d:
        cluster = d.cluster
        sandbox = cluster.sandbox
        # Material for the search: a token failure, a revocation (401 and renewal), bad API bodies, an
        # outage answered from the profile cache, the admin page, the status command.
        d.sleep(2)
        sandbox.revoke_tokens()
        d.sleep(3)
        sandbox.add_fault(target="profile", kind="non_json", times=3)
        sandbox.add_fault(target="token", kind="status", status=500, times=1)
        d.sleep(d.lifetime)
        passwords.append(_admin_pages(cluster))
        cluster.status_command("s7-status")
        _, _ = cluster.health("s7-health")
        # The canaries, planted through the system: the sandbox logs the id of each client it
        # registers, and its control API echoes it.
        cluster.save_body("s7-canary-client", 201, {}, str(sandbox.add_client(canary_id, canary_secret)))
        response = requests.post(
            f"{sandbox.base_url}/oauth/token",
            timeout=10,
            data={
                "grant_type": "client_credentials",
                "client_id": canary_id,
                "client_secret": canary_secret,
                "audience": "mts-insight-tech-non-prod",
            },
        )
        canary_token = response.json()["access_token"]
        for planted in (canary_token, canary_secret):
            echoed = sandbox.add_client(planted, f"unused-{random_secrets.token_hex(8)}")
            cluster.save_body("s7-canary-echo", 201, {}, str(echoed))
        players = active_players()[:3]
        cluster.save_body("s7-players", 200, {}, ", ".join(players))

    contexts = ctx.peers or [ctx]
    needles = token_needles("canary token", canary_token, canary=True)
    needles += secret_needles("canary secret", canary_secret, canary=True)
    harvested = issued = 0
    clusters: list[Cluster] = []
    for peer in contexts:
        s = peer.secrets
        needles += secret_needles(f"client secret ({peer.profile.name})", s.client_secret, client_id=s.client_id)
        needles += secret_needles(f"health bearer key ({peer.profile.name})", s.health_token)
        needles += secret_needles(f"SECRET_KEY ({peer.profile.name})", s.secret_key)
        needles += secret_needles(f"rotated SECRET_KEY ({peer.profile.name})", s.rotated_secret_key)
        for cl in peer.clusters:
            clusters.append(cl)
            tokens = cl.harvested_tokens()
            harvested += len(tokens)
            issued += int((cl.final_stats or {}).get("tokens", {}).get("issued", 0))
            for index, token in enumerate(tokens):
                needles += token_needles(f"token {index} of {cl.name}", token)
    for password in passwords:
        needles += secret_needles("admin password", password)
    files = corpus([c.logs for c in clusters] + [c.bodies for c in clusters])
    table = ctx.workdir / "results-so-far.md"
    if ctx.table_text:
        table.write_text(ctx.table_text)
        files.append(table)
    hits, scanned = scan(files, needles, {canary_token})
    real = [h for h in hits if not h.canary]
    canary = [h for h in hits if h.canary]
    places = sorted({f"{h.path.parent.name}/{h.path.name.split('-')[0]}" for h in canary})
    result.report(
        "corpus",
        f"{len(files)} files, {scanned / 1e6:.1f} MB from {len(clusters)} deployments "
        f"({', '.join(c.name for c in clusters)})",
    )
    result.report(
        "needles",
        f"{len(needles)} strings; {harvested} tokens harvested of {issued} issued to the "
        "fleet (the rest: covered by the JWT pattern)",
    )
    result.check(
        "canary found (proves the search)",
        f"{len(canary)} hits: token via needle {sum(h.label.startswith('canary token') for h in canary)}, "
        f"via JWT pattern {sum(h.label == 'JWT-shaped string' for h in canary)}, "
        f"secret {sum(h.label.startswith('canary secret') for h in canary)}; in {places}",
        "token and secret, in the sandbox log and in an answer",
        any(h.label == "JWT-shaped string" for h in canary)
        and any(h.label == "canary token" and h.path.suffix == ".log" for h in canary)
        and any(h.label == "canary token" and h.path.suffix == ".txt" for h in canary)
        and any(h.label == "canary secret" and h.path.suffix == ".log" for h in canary)
        and any(h.label == "canary secret" and h.path.suffix == ".txt" for h in canary),
    )
    result.check("secrets or tokens found", len(real), "0", not real)
    for hit in real[:20]:
        print(f"      {hit.path}: {hit.label}: {hit.excerpt}")


def _load_user(cluster: Cluster, username: str = "e2e-load") -> tuple[str, str]:
    """A staff user for the load generator and the fuzzer: the demo honours ``?fresh=1`` only for staff."""
    from .cluster import manage

    out = manage(cluster.env(), "bettorsense_demo_user", "--username", username)
    found = re.search(r"password: (\S+)", out)
    if found is None:
        raise RuntimeError("bettorsense_demo_user printed no password")
    return username, found.group(1)


def _admin_pages(cluster: Cluster) -> str:
    """Log in as the demo's staff user and keep the admin health page; returns the password (a needle)."""
    from .cluster import manage

    out = manage(cluster.env(), "bettorsense_demo_user", "--username", "e2e-staff")
    password = re.search(r"password: (\S+)", out).group(1)  # type: ignore[union-attr]
    session = staff_session(cluster.web_url, "e2e-staff", password, next_path="/admin/bettorsense/health/")
    page = session.get(f"{cluster.web_url}/admin/bettorsense/health/", timeout=30)
    cluster.save_body("s7-admin-health", page.status_code, page.headers, page.content)
    if page.status_code != 200 or "Health" not in page.text:
        raise RuntimeError(f"the admin health page did not open ({page.status_code})")
    return password


# --- 10. django-redis with IGNORE_EXCEPTIONS, Redis stopped -----------------------------------------


def silent_redis_outage(ctx: Context, result: ScenarioResult, outage: float = 20.0) -> None:
    """The token cache is django-redis with ``IGNORE_EXCEPTIONS: True``; its Redis stops for ``outage`` s.

    In the trial every call then waited TOKEN_WAIT_TIMEOUT (10 s) for a lock nobody held and failed,
    and health said the cache was fine. Each call must now answer within a second (a process-local
    token), and health must be degraded, naming the cache. The reuse rule is off: during an outage
    each process may hold a token of its own, as scenario 4 explains.
    """
    if ctx.profile.redis is False:
        raise RuntimeError("scenario 10 needs the services profile (Redis)")
    with deployment(
        ctx, f"s10-{ctx.profile.name}", enforce_reuse=False, extra_env={"BETTORSENSE_E2E_SILENT_REDIS": "1"}
    ) as d:
        cluster = d.cluster
        assert cluster.redis is not None
        d.sleep(5)
        before = d.monitor.sample()
        _, before_body = cluster.health("s10-before")
        down = d.monitor.sample()
        cluster.redis.stop()
        timed: list[tuple[float, dict[str, Any]]] = []
        end = time.time() + outage
        while time.time() < end:
            cluster.check_alive()
            started = time.time()
            status, body = cluster.health("s10-redis-down")
            timed.append((time.time() - started, {**body, "_http": status, "_at": time.time()}))
            time.sleep(1.0)
        status_code, status_body = cluster.status_command("s10-status-redis-down")
        up = d.monitor.sample()
        cluster.redis.start()
        back_body, _ = _wait_health(cluster, "s10-redis-back", lambda b: b["status"] == "ok", timeout=60)
        outage_calls = d.load.between(down.at + 0.5, up.at)
        before_calls = d.load.between(before.at - 5, down.at)

    slowest = max((call.latency for call in outage_calls), default=math.inf)
    result.check(
        "health before the outage (django-redis, IGNORE_EXCEPTIONS)",
        before_body.get("status"),
        "ok",
        before_body.get("status") == "ok",
    )
    result.report("calls before the outage", f"{len(before_calls)}, {latency_ms(before_calls)}")
    result.check(
        "calls while Redis is stopped: longest",
        f"{slowest:.2f} s of {len(outage_calls)} calls ({latency_ms(outage_calls)})",
        "≤ 1 s each",
        bool(outage_calls) and slowest <= 1.0,
    )
    result.check(
        "failed calls while Redis is stopped",
        f"{len(failed(outage_calls))} of {len(outage_calls)} {error_counts(outage_calls) or ''}".strip(),
        "0 (process-local tokens), no TokenWaitTimeout",
        not failed(outage_calls),
    )
    judged = [body for _, body in timed if body["_at"] > down.at + 1]
    named = [
        body
        for body in judged
        if body["status"] == "degraded"
        and any(r["code"] == "cache-unreachable" and "'default'" in r["message"] for r in body.get("reasons", []))
    ]
    result.check(
        "health while Redis is stopped",
        f"{len(named)} of {len(judged)} degraded, cache-unreachable naming 'default' ({statuses(judged)})",
        "all",
        bool(judged) and len(named) == len(judged),
    )
    health_slowest = max((seconds for seconds, _ in timed), default=math.inf)
    result.check(
        "health answers while Redis is stopped: longest", f"{health_slowest:.2f} s", "≤ 1 s", health_slowest <= 1.0
    )
    result.check(
        "bettorsense_status while Redis is stopped",
        f"exit {status_code}, {status_body and status_body.get('status')}",
        "exit 0, degraded",
        status_code == 0 and bool(status_body) and status_body.get("status") == "degraded",
    )
    outage_tokens = token_delta(down, up)
    result.report(
        "token requests while Redis is stopped", f"{outage_tokens['total']} ({outage_tokens['rejected']} refused)"
    )
    result.check(
        "health after Redis is back",
        back_body["status"] if back_body else "not ok within 60 s",
        "ok",
        back_body is not None,
    )


# --- 11. clock skew -------------------------------------------------------------------------------

SKEWED = ("web", "worker", "beat")
#: Five lifetimes in under two minutes. The corrected clocks err only on the late side (by at most
#: a second and a round trip), which the sandbox's reuse slack (20% of the lifetime, 3.2 s, against
#: a 1.6 s window) absorbs.
SKEW_LIFETIME = 16.0


def _faketime(skew: int) -> tuple[str, ...]:
    found = shutil.which("faketime")
    if found is None:
        raise RuntimeError("faketime is missing (apt-get install faketime; .ci/run installs it)")
    return (found, "-f", f"{skew:+d}s")


def _restart_skewed(cluster: Cluster, skew: int) -> None:
    """Web, worker and beat again, under ``faketime`` ``skew`` seconds off; the sandbox and cache stay."""
    from .cluster import STARTUP_TIMEOUT, WEB_WORKERS

    for name in SKEWED:
        cluster.processes.pop(name).stop()
    # As beat on another machine: the schedule state written on the old clock (90 s ahead) would make
    # the new beat wait that long before its next tick.
    for schedule in cluster.private.glob("celerybeat-schedule*"):
        schedule.unlink()
    cluster.wrappers = dict.fromkeys(SKEWED, _faketime(skew))
    booted = cluster.log_text("web").count("Booting worker")
    ready = cluster.log_text("worker").count(" ready.")
    cluster.start_worker()
    cluster.start_beat()
    cluster.start_web()
    wait_until(
        "gunicorn's workers",
        lambda: cluster.log_text("web").count("Booting worker") >= booted + WEB_WORKERS,
        STARTUP_TIMEOUT,
    )
    wait_until("the Celery worker", lambda: cluster.log_text("worker").count(" ready.") > ready, STARTUP_TIMEOUT)
    wait_until("the demo's health endpoint", cluster._web_up, STARTUP_TIMEOUT)


def _logged(text: str, pattern: str) -> list[str]:
    """The app's log messages in ``text`` that match ``pattern`` (each once, as ``events`` counts them)."""
    regex = re.compile(pattern)
    found = (LOG_LINE.match(line) for line in text.splitlines())
    return [m.group(5) for m in found if m is not None and regex.search(m.group(5))]


def clock_skew(ctx: Context, result: ScenarioResult, lifetimes: float = 5.0) -> None:
    """Web, worker and beat 45 s ahead, then 45 s behind, reuse rule on: no refusal, no 401."""
    skewed_ctx = replace(ctx, timing=Timing(lifetime=SKEW_LIFETIME, refresh_every=ctx.timing.refresh_every))
    phases = [(45, lifetimes / 2), (-45, lifetimes / 2)]
    measured: list[dict[str, Any]] = []
    wrappers = dict.fromkeys(SKEWED, _faketime(phases[0][0]))
    with deployment(skewed_ctx, f"s11-{ctx.profile.name}", wrappers=wrappers) as d:
        cluster, lifetime = d.cluster, d.lifetime
        for index, (skew, span) in enumerate(phases):
            if index:
                _restart_skewed(cluster, skew)
            marks = {name: len(cluster.log_text(name)) for name in ("web", "worker")}
            before = d.monitor.sample()
            d.sleep(span * lifetime)
            after = d.monitor.sample()
            # The phase's own log lines, by position: their time stamps are on the skewed clocks.
            logs = {name: cluster.log_text(name)[mark:] for name, mark in marks.items()}
            _, body = cluster.health(f"s11-health{skew:+d}")
            measured.append(
                {
                    "skew": skew,
                    "before": before,
                    "after": after,
                    "calls": d.load.between(before.at, after.at),
                    "clocks": [c["skew"] for c in body.get("clocks", [])],
                    "logs": logs,
                    "reasons": reasons(body),
                }
            )

    logged401 = events(cluster, API_401, ("web",))
    result.report("token lifetime, renewal window", f"{lifetime:g} s, {skewed_ctx.timing.window:g} s")
    total_span = 0.0
    for phase in measured:
        skew, before, after, calls = phase["skew"], phase["before"], phase["after"], phase["calls"]
        span = (after.at - before.at) / lifetime
        total_span += span
        tokens = token_delta(before, after)
        label = f"{skew:+d} s"
        result.check(
            f"{label}: processes that measured their clock {skew:+d} s off (health)",
            sorted(round(value) for value in phase["clocks"]),
            f"at least one within 1 s of {skew:+d}",
            any(abs(value - skew) <= 1.0 for value in phase["clocks"]),
        )
        result.check(
            f"{label}: token requests refused (reuse rule or other)",
            f"{tokens['rejected']} of {tokens['total']}, {tokens['violations']} reuse violations",
            "0",
            tokens["rejected"] == 0 and tokens["violations"] == 0,
        )
        result.check(
            f"{label}: token requests",
            f"{tokens['total']} over {span:.2f} lifetimes",
            "lifetimes ± 1",
            abs(tokens["total"] - span) <= 1,
        )
        api401 = status_delta(before, after, "401")
        result.check(f"{label}: 401s at the sandbox", api401, "0", api401 == 0)
        result.check(
            f"{label}: failed calls",
            f"{len(failed(calls))} of {len(calls)} {error_counts(calls) or ''}".strip(),
            "0",
            not failed(calls) and len(calls) > 0,
        )
        result.report(f"{label}: health reasons", sorted(phase["reasons"]) or "none")
        beat = _logged(phase["logs"]["worker"], RENEWED_BY_BEAT)
        lazy = _logged(phase["logs"]["web"], RENEWED_BY_REQUEST)
        # Reported, not asserted: each process's offset is known to a second (the Date header's
        # resolution), more than the lazy half of this 1.6 s window, so a request path sometimes
        # renews before beat. Either way, one renewal at a time.
        result.check(
            f"{label}: renewals logged (by beat, by requests)",
            f"{len(beat)}, {len(lazy)}",
            "as many as token requests",
            len(beat) + len(lazy) == tokens["total"],
        )
    result.check("401s logged by the web workers (whole run)", len(logged401), "0", not logged401)
    result.report("lifetimes measured", f"{total_span:.2f}")


# --- 12. two sync runs started at once ----------------------------------------------------------

SYNC_PAIR = (1212, 12)  # a bookmaker pair of the scenario's own: the suite's database is shared


def _sync_process(cluster: Cluster, env: dict[str, str], name: str, *args: str) -> Process:
    process = Process(name, [PYTHON, "-m", "e2e.sync_runner", *args], env, cluster.logs / f"{name}.log").start()
    cluster.processes[name] = process
    return process


def _finished(cluster: Cluster, process: Process, timeout: float = 120) -> dict[str, Any]:
    """Wait for a runner; its last output line, as JSON."""
    assert process.popen is not None
    process.popen.wait(timeout=timeout)
    cluster.processes.pop(process.name, None)
    lines = cluster.log_text(process.name).strip().splitlines()
    if process.popen.returncode != 0 or not lines:
        raise RuntimeError(f"{process.name} exited {process.popen.returncode}: {lines[-3:]}")
    return json.loads(lines[-1])


def _runner(cluster: Cluster, env: dict[str, str], work: Path, name: str) -> dict[str, Any]:
    return _finished(cluster, _sync_process(cluster, env, name, "run", "--name", name, "--dir", str(work)))


def _signals(work: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(work.glob("signals-*.jsonl")) for line in path.read_text().splitlines()]


def two_syncs_at_once(ctx: Context, result: ScenarioResult) -> None:
    """Two sync processes start at once (a file barrier); the winner holds after its first page while
    the loser is refused by the cache lock and, once the lock's entry is deleted, a third process is
    refused by the database. Each change is signalled exactly once, counted by each process's receiver."""
    cluster = Cluster("s12-sync", ctx.profile, ctx.workdir, ctx.timing, ctx.secrets, enforce_reuse=False)
    ctx.clusters.append(cluster)
    work = cluster.dir / "s12"
    work.mkdir()
    with cluster:
        if cluster.redis is not None:
            cluster.redis.start()
        cluster.start_sandbox()
        cluster.sandbox.add_client(ctx.secrets.client_id, ctx.secrets.client_secret, bookmakers=[(123, 456), SYNC_PAIR])
        cluster.sandbox.set_config(page_size=100)
        env = cluster.env()
        overrides = json.loads(env["BETTORSENSE_E2E_OVERRIDES"])
        env["BETTORSENSE_E2E_OVERRIDES"] = json.dumps({**overrides, "BATCH_PAGE_SIZE": 100})
        env["BETTORSENSE_BOOKMAKER_ID"], env["BETTORSENSE_SUB_BOOKMAKER_ID"] = map(str, SYNC_PAIR)

        first_load = work / "initial"
        first_load.mkdir()
        initial = _runner(cluster, env, first_load, "initial")
        result.check("initial load", initial["outcome"], "succeeded", initial["outcome"] == "succeeded")
        result.check("signals of the initial load", len(_signals(first_load)), "0", not _signals(first_load))

        cluster.sandbox.advance_day()
        added = cluster.sandbox.add_players(100)
        race = work / "race"
        race.mkdir()
        both = [
            _sync_process(cluster, env, name, "run", "--name", name, "--dir", str(race), "--parties", "2", "--hold")
            for name in ("A", "B")
        ]
        wait_until("one runner holding after its first page", lambda: list(race.glob("*.holding")), 120, 0.05)
        holder = next(race.glob("*.holding")).stem
        loser = next(p for p in both if p.name != holder)
        refused = _finished(cluster, loser)
        result.check(
            "second run, cache lock held",
            f"{refused['outcome']}: {refused.get('message', '')}",
            "refused",
            refused["outcome"] == "refused",
        )
        dropped = _finished(cluster, _sync_process(cluster, env, "drop-lock", "drop-lock"))
        third = _runner(cluster, env, race, "C")
        result.check(
            "third run, cache lock entry deleted",
            f"{third['outcome']}: {third.get('message', '')} (lock entry was there: {dropped['dropped']})",
            "refused by the database",
            third["outcome"] == "refused" and "database" in third.get("message", "") and dropped["dropped"],
        )
        (race / "release").write_text("go")
        winner = _finished(cluster, next(p for p in both if p.name == holder))
        result.check("the run that worked", winner["outcome"], "succeeded", winner["outcome"] == "succeeded")

        rerun_dir = work / "rerun"
        rerun_dir.mkdir()
        rerun = _runner(cluster, env, rerun_dir, "rerun")
        report = _finished(cluster, _sync_process(cluster, env, "report", "report"))

        sent = _signals(race)
        due = report["due"].get(str(winner["run"]), [])
        per_change = Counter(s["change"] for s in sent)
        new_players = {d["account"] for d in due if d["previous"] is None}
        result.check(
            "band changes signalled",
            f"{len(sent)} signals for {len(due)} changes due ({len(new_players)} first seen, "
            f"{len(due) - len(new_players)} band moves), by {sorted({s['runner'] for s in sent})}",
            "each exactly once, by the run that worked",
            bool(due)
            and sorted(per_change) == sorted(d["change"] for d in due)
            and set(per_change.values()) == {1}
            and {s["runner"] for s in sent} == {holder},
        )
        with_profile = {a for a in added if int(a.rsplit("_", 1)[1]) % 97 and int(a.rsplit("_", 1)[1]) % 89}
        result.check(
            "new players signalled with no previous band",
            f"{len(new_players)} of {len(added)} added ({len(with_profile)} have a profile)",
            "every added player with a profile",
            new_players == with_profile,
        )
        result.check(
            "re-run",
            f"{rerun['outcome']}, {len(_signals(rerun_dir))} signals",
            "succeeded, 0 signals",
            rerun["outcome"] == "succeeded" and not _signals(rerun_dir),
        )
        result.check("changes left with a signal pending", report["pending"], "0", report["pending"] == 0)
        runs = report["runs"]
        result.check(
            "sync runs recorded",
            ", ".join(f"{r['status']}" for r in runs),
            "3 succeeded (initial, the worker, the re-run); none running",
            [r["status"] for r in runs] == ["succeeded"] * 3,
        )
        result.report("wall time of the run that worked, held after page 1 meanwhile", f"{winner['seconds']:.1f} s")


# --- 13. two credential sets, one token endpoint failing -------------------------------------------

BRAND_B = "brand-b"


def _profile_command(cluster: Cluster, label: str, client: str) -> tuple[int, str]:
    """``manage.py bettorsense_profile player_1 --fresh --client <set>``: exit code and output (kept)."""
    done = subprocess.run(
        [PYTHON, "manage.py", "bettorsense_profile", "player_1", "--fresh", "--json", "--client", client],
        cwd=ROOT,
        env=cluster.env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    cluster.save_body(label, done.returncode, {}, done.stdout + b"\n" + done.stderr)
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")


def _client_requests(cluster: Cluster, client_id: str) -> dict[str, Any]:
    return cluster.sandbox.stats()["token_requests"].get(client_id, {"total": 0, "issued": 0, "rejected": {}})


def second_set_fails(ctx: Context, result: ScenarioResult, lifetimes: float = 2.0) -> None:
    """Two credential sets on one deployment; brand-b's token requests fail for a while, its token
    revoked: the default set's calls and token renewals go on as if nothing happened."""
    from bettorsense.conf import DEFAULTS

    from .bounds import max_token_requests

    brand_id, brand_secret = f"e2e-b-{secrets.token_hex(4)}", f"cs-b-{secrets.token_hex(20)}"
    clients = {
        BRAND_B: {"CLIENT_ID": brand_id, "CLIENT_SECRET": brand_secret, "BOOKMAKER_ID": 123, "SUB_BOOKMAKER_ID": 456}
    }
    base, maximum = float(DEFAULTS["BACKOFF_BASE"]), float(DEFAULTS["BACKOFF_MAX"])
    with deployment(
        ctx,
        f"s13-{ctx.profile.name}",
        extra_env={"BETTORSENSE_E2E_CLIENTS": json.dumps(clients)},
        extra_clients=[(brand_id, brand_secret)],
    ) as d:
        cluster, lifetime = d.cluster, d.lifetime
        wait_until("both sets' first tokens", lambda: _client_requests(cluster, brand_id)["issued"] >= 1, lifetime)
        code_before, _ = _profile_command(cluster, "s13-brand-b-before", BRAND_B)
        cluster.sandbox.add_fault(target="token", kind="status", status=503, client_id=brand_id)
        cluster.sandbox.revoke_tokens(brand_id)
        fault_at = time.time()
        start, brand_start = d.monitor.sample(), _client_requests(cluster, brand_id)
        d.sleep(1)
        code_failing, failing_text = _profile_command(cluster, "s13-brand-b-failing", BRAND_B)
        code_default, _ = _profile_command(cluster, "s13-default-during", "default")
        health = d.health_samples(lifetimes * lifetime - 1, "s13-failing", every=2.0)
        end, brand_end = d.monitor.sample(), _client_requests(cluster, brand_id)
        calls = d.load.between(start.at, end.at)
        _, status_body = cluster.status_command("s13-status")
        cluster.sandbox.clear_faults()
        healed_at = time.time()
        recovered = wait_until(
            "brand-b's calls after its token endpoint heals",
            lambda: _profile_command(cluster, "s13-brand-b-after", BRAND_B)[0] == 0 or None,
            maximum * 1.2 + lifetime,
            interval=1.0,
        )
        recovered_after = time.time() - healed_at

    span = (end.at - start.at) / lifetime
    tokens = token_delta(start, end)
    result.report("load on the default set", f"{len(calls)} calls over {span:.2f} lifetimes, {latency_ms(calls)}")
    result.check(
        "default set: failed calls while brand-b fails",
        f"{len(failed(calls))} of {len(calls)} {error_counts(calls) or ''}".strip(),
        "0",
        not failed(calls) and len(calls) > 0,
    )
    result.check(
        "default set: token requests in the window",
        f"{tokens['total']} over {span:.2f} lifetimes, {tokens['rejected']} refused",
        "lifetimes ± 1, none refused",
        abs(tokens["total"] - span) <= 1 and tokens["rejected"] == 0,
    )
    result.check(
        "default set: a fresh profile by command while brand-b fails",
        f"exit {code_default}",
        "0",
        code_default == 0,
    )
    brand_total = brand_end["total"] - brand_start["total"]
    bound = max_token_requests(end.at - fault_at, base, maximum)
    result.check(
        "brand-b: token requests while its endpoint fails",
        f"{brand_total} ({brand_end['issued'] - brand_start['issued']} issued)",
        f"1 to {bound} (its own backoff), none issued",
        1 <= brand_total <= bound and brand_end["issued"] == brand_start["issued"],
    )
    result.check(
        "brand-b: its calls fail with a token error",
        f"before the fault exit {code_before}; during exit {code_failing}",
        "0 before; non-zero, a Token* error, during",
        code_before == 0 and code_failing != 0 and "Token" in failing_text,
    )
    by_set = [{one["name"]: one["status"] for one in body.get("clients", [])} for body in health]
    result.check(
        "health: each set's status while brand-b fails",
        dict(Counter(f"default {s.get('default')}, brand-b {s.get(BRAND_B)}" for s in by_set)),
        "default ok throughout; brand-b not ok once its token is gone",
        bool(by_set)
        and all(s.get("default") == "ok" for s in by_set)
        and any(s.get(BRAND_B) not in (None, "ok") for s in by_set),
    )
    listed = [one["name"] for one in (status_body or {}).get("clients", [])]
    result.check(
        "bettorsense_status --json lists each set", listed, "['default', 'brand-b']", listed == ["default", BRAND_B]
    )
    result.report(
        "brand-b: its calls succeed again after the endpoint heals",
        f"{recovered_after:.1f} s later" if recovered else "no",
    )
