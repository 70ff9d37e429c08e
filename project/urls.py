"""URLs of the demo project."""

from django.contrib import admin
from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("bettorsense/", include("bettorsense.urls")),
    # Account ids are the operator's own and may hold any character, "/" included.
    re_path(r"^players/(?P<account_id>.+)/risk-profile/$", views.risk_profile, name="risk-profile"),
]
