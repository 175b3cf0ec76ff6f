from django.contrib import admin
from django.urls import include, path

from chat.api import api
from chat.health import healthz, metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # The HTTP API, with its OpenAPI schema at /api/openapi.json and docs at /api/docs.
    path("api/", api.urls),
    path("", include("chat.urls")),
]
