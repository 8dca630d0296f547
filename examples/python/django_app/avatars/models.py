"""What the app keeps of an upload: the final key Chute promoted it to."""

from django.conf import settings
from django.db import models


class Avatar(models.Model):
    """An image a user uploaded through Chute. `upload_id` is the receipt's
    `jti`: submitting the same receipt twice finds the same row."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="avatars")
    upload_id = models.CharField(max_length=64, unique=True)
    key = models.CharField(max_length=1024)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
