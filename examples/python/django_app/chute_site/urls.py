"""The example site's URLs: the admin (for its login page) and the avatar app."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("avatars.urls")),
]
