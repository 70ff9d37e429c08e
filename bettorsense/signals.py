"""Signals sent by bettorsense.

``risk_band_changed`` is the hook where a sportsbook backend starts an intervention::

    from django.dispatch import receiver
    from bettorsense.signals import risk_band_changed

    @receiver(risk_band_changed)
    def on_band_change(sender, profile, previous_band, new_band, **kwargs):
        if new_band >= RiskBand.HIGH and (previous_band is None or previous_band < RiskBand.HIGH):
            start_care_call.delay(profile.account_id)

The sync sends it after the page's transaction commits, once per recorded change whose band moved,
and once for a player it sees for the first time after the bookmaker pair's initial load (then
``previous_band`` is None). The initial load itself sends nothing unless ``SIGNAL_INITIAL_LOAD`` is
on. Arguments: ``profile`` (the stored ``bettorsense.models.PlayerRiskProfile``), ``previous_band``
(``RiskBand`` or None), ``new_band`` (``RiskBand``) and, new in 0.2, ``change`` (the
``bettorsense.models.RiskProfileChange`` it reports: score, percentile, factors, vendor time).

Exactly once: a change row is unique per (profile, vendor update time), and only the run that
inserted it sends it; the database allows one running sync per bookmaker pair. Each send is claimed
first (the row's ``signal_pending`` cleared), so a change whose sends a stopped process never reached
is sent by the pair's next run, and none is sent twice. A receiver that raises is logged and does not
stop the others.
"""

from django.dispatch import Signal

risk_band_changed = Signal()
