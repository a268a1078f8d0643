"""Helpers shared by the feature forms."""
from __future__ import annotations

from collections.abc import Iterable

from wtforms.fields.choices import SelectChoice
from wtforms.widgets import Input, PasswordInput

from .crypto import is_masked


def choices(pairs: Iterable[tuple[object, str]]) -> list[SelectChoice]:
    """Select options from ``(value, label)`` pairs (WTForms 3.3 deprecates bare tuples)."""
    return [SelectChoice(value, label) for value, label in pairs]


class SecretInput(PasswordInput):
    """A password input that never renders a stored secret, only its mask.

    Set ``field.masked_value`` (e.g. ``••••3f9a``) when editing a stored secret;
    sending the mask back means "keep the stored one".  A refused form re-shows what the
    user typed in this very request (it came from them, so nothing leaks), so they need not
    type it again; a blank or the mask sent back shows the mask.
    """

    def __call__(self, field, **kwargs):
        # raw_data is set only from the submitted form, never from a stored object.
        typed = field.raw_data[0] if field.raw_data else ""
        kwargs["value"] = typed if typed and not is_masked(typed) else getattr(field, "masked_value", "")
        return Input.__call__(self, field, **kwargs)
