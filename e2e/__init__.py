"""End-to-end proof under load and faults: the whole deployment, real processes, ``make e2e``.

Each scenario starts its own deployment (:mod:`e2e.cluster`): the sandbox with a short token
lifetime (20 s) and its reuse rule on, the demo project under gunicorn (4 workers), a Celery worker
and a separate Celery beat (every 0.5 s), on PostgreSQL (a database of the run's own) and a
``redis-server`` of the suite's own on a free port, never the machine's 6379. A load generator
(:mod:`e2e.load`) calls the demo's risk-profile view for the whole scenario while the scenario
breaks something on purpose (:mod:`e2e.scenarios`):

1. steady state over five lifetimes; 2. beat stopped, then restarted; 3. the token endpoint
answering 503, then hanging; 4. Redis stopped and restarted; 5. API 503/429 bursts, a revoked
token, an outage that opens the circuit breaker; 6. fuzzed account ids at the demo's edge;
7. the leak search over every log and answer of the run (:mod:`e2e.leaks`); 8. a token endpoint
answering ``Retry-After: 10^12``; 9. a rolling ``SECRET_KEY`` rotation, half the fleet on each key.

Scenario 1 also runs on the embedded defaults (SQLite, database cache, filesystem broker).
Figures come from the sandbox's counters (:mod:`e2e.observe`), the processes' logs and the load's
answers; counts and states are asserted, times only reported. Everything started is stopped by
process group in a ``finally``; the work directory and the database are removed (``--keep`` keeps
the logs). ``python -m e2e --help`` lists the options; the results table goes to stdout and to
``artifacts/e2e-results.md``.
"""
