"""The avatar app's URLs."""

from django.urls import path

from . import views

urlpatterns = [
    path("chute/grant", views.grant, name="chute-grant"),
    path("avatar", views.avatar, name="avatar"),
]
