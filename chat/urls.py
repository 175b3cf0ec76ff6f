from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("rooms/", views.room_open, name="room_open"),
    path("api/rooms/", views.rooms_json, name="rooms_json"),
    path("mentions/", views.mentions, name="mentions"),
    path("nickname/", views.nickname, name="nickname"),
    path("accounts/signup/", views.signup, name="signup"),
    path("chat/<str:room_name>/", views.room, name="room"),
]
