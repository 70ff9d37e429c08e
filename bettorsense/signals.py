"""Signals sent by bettorsense.

``risk_band_changed`` is the hook where a sportsbook backend starts an intervention::

    from django.dispatch import receiver
    from bettorsense.signals import risk_band_changed

    @receiver(risk_band_changed)
    def on_band_change(sender, profile, previous_band, new_band, **kwargs):
        if new_band >= RiskBand.HIGH > previous_band:
            start_care_call.delay(profile.account_id)

It is sent by the sync, once per player whose band moved, after the page's transaction commits:
``profile`` is the stored ``bettorsense.models.PlayerRiskProfile``, the bands are ``RiskBand``.
A player seen for the first time has no previous band and sends nothing.
"""

from django.dispatch import Signal

risk_band_changed = Signal()
