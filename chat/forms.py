"""The lobby's forms and sign-up. Each input's limits (``maxlength``, ``pattern``) come from the rule it enforces,
chat.rooms for room names and chat.identity for nicknames, so the browser checks what the server checks."""

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import RegexValidator

from .identity import BAD_NICKNAME, GUEST_PREFIX, NICKNAME_MAX_LENGTH, NICKNAME_PATTERN, NICKNAME_RULE, RESERVED_NAMES
from .models import RoomKind
from .rooms import ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN, ROOM_NAME_RULE, normalize_room_name


class RoomForm(forms.Form):
    name = forms.CharField(
        label="Room name",
        max_length=ROOM_NAME_MAX_LENGTH,
        help_text=f"{ROOM_NAME_RULE}.",
        widget=forms.TextInput(
            attrs={
                "pattern": ROOM_NAME_PATTERN,
                "placeholder": "e.g. general",
                "aria-describedby": "room-name-help",
                "autocapitalize": "off",
                "spellcheck": "false",
            }
        ),
    )

    # Optional: "open" a public room by name without choosing. Guests may not create private rooms
    # (chat.membership says so; the lobby disables the choice for them).
    kind = forms.ChoiceField(
        label="Kind",
        choices=[(RoomKind.PUBLIC, "Public"), (RoomKind.PRIVATE, "Private")],
        required=False,
        widget=forms.RadioSelect,
    )

    def clean_name(self) -> str:
        name = normalize_room_name(self.cleaned_data["name"])
        if name is None:
            raise forms.ValidationError(f"Use {ROOM_NAME_RULE}.")
        return name


class NicknameForm(forms.Form):
    """The nickname's format; chat.identity.set_nickname then refuses reserved and registered names."""

    nickname = forms.CharField(
        label="Nickname",
        max_length=NICKNAME_MAX_LENGTH,
        help_text=f"{NICKNAME_RULE}.",
        validators=[RegexValidator(rf"\A(?:{NICKNAME_PATTERN})\Z", BAD_NICKNAME, code="bad_nickname")],
        widget=forms.TextInput(attrs={"autocomplete": "nickname", "aria-describedby": "nickname-help"}),
    )


class SignUpForm(UserCreationForm):
    def clean_username(self) -> str:
        username = self.cleaned_data.get("username") or ""
        if username.lower().startswith(GUEST_PREFIX):
            raise forms.ValidationError(f"Usernames may not start with '{GUEST_PREFIX}'.")
        if username.lower() in RESERVED_NAMES:
            raise forms.ValidationError("That name is reserved.")
        # Django's own check refuses a name already taken in another case.
        return super().clean_username()
