"""The review form and the export's date range; who and when are never fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from bettorsense.reviews.models import NOTE_MAX_LENGTH, Method, Outcome


class ReviewForm(forms.Form):
    outcome = forms.ChoiceField(choices=Outcome.choices, widget=forms.RadioSelect(attrs={"class": "radiolist inline"}))
    method = forms.ChoiceField(
        choices=[("", "(not an intervention)"), *Method.choices],
        required=False,
        help_text="The intervention's method, as the vendor's Intervention Inform names them.",
    )
    model_initiated = forms.BooleanField(
        required=False,
        label="Model-initiated",
        help_text="The intervention was started by the risk model's signal, not by a person's judgement.",
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), max_length=NOTE_MAX_LENGTH, required=False
    )

    def add_record_errors(self, error: ValidationError) -> None:
        """The record's own refusals (``Review.clean``), shown on the fields they name."""
        for name, messages in error.message_dict.items():
            self.add_error(name if name in self.fields else None, messages)


class ExportForm(forms.Form):
    first = forms.DateField(label="From", help_text="YYYY-MM-DD, UTC, included.")
    last = forms.DateField(label="To", help_text="YYYY-MM-DD, UTC, included.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first"), cleaned.get("last")
        if first and last and first > last:
            raise ValidationError("The range ends before it starts.")
        return cleaned
