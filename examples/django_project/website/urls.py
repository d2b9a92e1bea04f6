"""URLs of the example project."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("webhook-signature", views.webhook_signature),
    path("signed", views.signed),
    path("site", views.site),
]
