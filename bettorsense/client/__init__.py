"""The HTTP client of the Bettor Sense API.

``api`` makes the calls (bearer token, retries, error mapping); ``http`` holds the pooled session;
``breaker`` is the fleet's circuit breaker; ``validation`` checks caller input and encodes path
segments.
"""
