from django import forms
from django.contrib.auth.forms import UserCreationForm

from .identity import GUEST_PREFIX, RESERVED_NAMES
from .rooms import normalize_room_name


class RoomForm(forms.Form):
    name = forms.CharField(label="Room name", max_length=64)

    def clean_name(self) -> str:
        name = normalize_room_name(self.cleaned_data["name"].strip())
        if name is None:
            raise forms.ValidationError("Use 1-64 letters, digits, '-' or '_'.")
        return name


class NicknameForm(forms.Form):
    nickname = forms.CharField(label="Nickname", max_length=32)


class SignUpForm(UserCreationForm):
    def clean_username(self) -> str:
        username = self.cleaned_data.get("username") or ""
        if username.lower().startswith(GUEST_PREFIX):
            raise forms.ValidationError(f"Usernames may not start with '{GUEST_PREFIX}'.")
        if username.lower() in RESERVED_NAMES:
            raise forms.ValidationError("That name is reserved.")
        # Django's own check refuses a name already taken in another case.
        return super().clean_username()
