from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("rooms/", views.room_open, name="room_open"),
    path("mentions/", views.mentions, name="mentions"),
    path("nickname/", views.nickname, name="nickname"),
    path("accounts/signup/", views.signup, name="signup"),
    path("chat/<str:room_name>/", views.room, name="room"),
    path("invite/<str:token>/", views.invite, name="invite"),
    path("dm/", views.direct_open, name="direct_open"),
    path("dm/<str:username>/", views.direct, name="direct"),
]
