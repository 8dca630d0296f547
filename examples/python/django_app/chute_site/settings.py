"""Settings of the Chute example site: a Django project whose users upload
an avatar straight to Chute's store and submit the receipt.

The Chute settings come from the environment, with the values Chute
itself is given: CHUTE_URL (where browsers and the app reach Chute) and
CHUTE_GRANT_SECRET (the same `kid:secret` as the server's).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-example-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",  # only for its login page: /admin/login/
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "avatars",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "chute_site.urls"
LOGIN_URL = "/admin/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# Chute: where it answers, and the secret grants and receipts are signed with.
CHUTE_URL = os.environ.get("CHUTE_URL", "http://127.0.0.1:8080")
CHUTE_GRANT_SECRET = os.environ.get("CHUTE_GRANT_SECRET", "")
# Secrets Chute still accepts after a rotation (its grant_secrets_retired).
CHUTE_GRANT_SECRETS_RETIRED: list[str] = []
AVATAR_MAX_SIZE = 5 * 1024 * 1024
