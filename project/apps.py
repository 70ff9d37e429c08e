"""The demo project as a Django app, so that its demo-only management commands are found."""

from django.apps import AppConfig


class DemoProjectConfig(AppConfig):
    name = "project"
    verbose_name = "Bettor Sense demo"
