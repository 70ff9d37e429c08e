"""Privacy duties: the access log, erasure, retention and pseudonyms in logs.

* :mod:`~bettorsense.privacy.access`: who looked at which player's risk data, when, and why.
* :mod:`~bettorsense.privacy.pseudonyms`: the keyed hash that names a player in log lines.
"""
