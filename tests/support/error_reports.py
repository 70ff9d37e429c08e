"""What error reports show of a failure: Django's technical 500 page and the frame variables an error
tracker collects. The leak tests search these for secrets."""

from __future__ import annotations

from django.test import RequestFactory
from django.views.debug import ExceptionReporter


def frame_variables(error: BaseException, *, suppressed_context: bool = True) -> list[str]:
    """``name=repr(value)`` for every local of every frame on the traceback of ``error`` and of every
    exception chained to it. Sentry skips a context hidden by ``raise ... from None``; with
    ``suppressed_context`` (the default) it is searched too, which is stricter."""
    texts: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        traceback = current.__traceback__
        while traceback is not None:
            for name, value in traceback.tb_frame.f_locals.items():
                try:
                    shown = repr(value)
                except Exception as err:  # a repr that fails shows nothing
                    shown = f"<repr failed: {type(err).__name__}>"
                texts.append(f"{name}={shown}")
            traceback = traceback.tb_next
        context = current.__context__ if suppressed_context or not current.__suppress_context__ else None
        pending.extend(chained for chained in (current.__cause__, context) if chained is not None)
    return texts


def django_reports(error: BaseException, path: str = "/") -> tuple[str, str]:
    """The technical 500 page of ``error`` as HTML and as text, for a GET of ``path``."""
    reporter = ExceptionReporter(RequestFactory().get(path), type(error), error, error.__traceback__)
    return reporter.get_traceback_html(), reporter.get_traceback_text()
