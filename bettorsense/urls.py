"""URLs of the app; a project mounts them, e.g. ``path("bettorsense/", include("bettorsense.urls"))``."""

from django.urls import path

from bettorsense import views

app_name = "bettorsense"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("metrics/", views.metrics, name="metrics"),
]
