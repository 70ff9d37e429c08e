"""The review queue and the interaction record: what staff did about each risk signal.

- :mod:`~bettorsense.reviews.models`: ``Review``, append-only, one row per outcome recorded, and
  ``ReviewQueue``, the admin page's placeholder without a table.
- :mod:`~bettorsense.reviews.queue`: which players wait for a review, with counts and filters.
- :mod:`~bettorsense.reviews.recording`: records a review and sends ``review_recorded`` on commit.
- :mod:`~bettorsense.reviews.export`: the auditor's CSV, streamed and safe to open in a spreadsheet.
- :mod:`~bettorsense.reviews.signals`: ``review_recorded``, the host's hook.
- :mod:`~bettorsense.reviews.admin`: the queue page, the review form, the record and the export.
"""
