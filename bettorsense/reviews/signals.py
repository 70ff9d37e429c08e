"""``review_recorded``: sent once for each review recorded, after its transaction commits.

A host forwards it where its own workflow needs it, for example to Sportradar's Intervention
Inform message, which travels over Transaction 3.0. This package does not speak that protocol and
sends nothing to Sportradar about reviews: the receiver is the host's::

    from django.dispatch import receiver
    from bettorsense.reviews.signals import review_recorded

    @receiver(review_recorded)
    def inform_sportradar(sender, review, **kwargs):
        if review.outcome == "intervention":
            send_intervention_inform.delay(review.pk)  # the host's task, the host's protocol

``review`` is the recorded ``bettorsense.reviews.models.Review``: ``account_id``, ``bookmaker_id``,
``sub_bookmaker_id``, ``outcome`` (``cleared``, ``needs-review``, ``intervention``), ``method``
(the vendor's values: ``pop-up``, ``rg-messaging``, ``email``, ``care-call``, ``limits-update``,
``other``; empty unless an intervention), ``model_initiated``, ``note``, ``recorded_at``, and
``corrects`` (the review it corrects, or None). A failing receiver is logged and stops neither the
others nor the page that recorded the review.
"""

from django.dispatch import Signal

review_recorded = Signal()
