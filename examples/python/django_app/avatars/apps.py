"""The avatar app: grants for the upload widget, receipts turned into avatars."""

from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    name = "avatars"
    default_auto_field = "django.db.models.BigAutoField"
