"""Helpers shared by the feature forms."""
from __future__ import annotations

from collections.abc import Iterable

from wtforms.fields.choices import SelectChoice
from wtforms.widgets import Input, PasswordInput


def choices(pairs: Iterable[tuple[object, str]]) -> list[SelectChoice]:
    """Select options from ``(value, label)`` pairs (WTForms 3.3 deprecates bare tuples)."""
    return [SelectChoice(value, label) for value, label in pairs]


class SecretInput(PasswordInput):
    """A password input that never echoes what was typed, only the stored secret's mask.

    Set ``field.masked_value`` (e.g. ``••••3f9a``) when editing a stored secret;
    sending the mask back means "keep the stored one".
    """

    def __call__(self, field, **kwargs):
        kwargs["value"] = getattr(field, "masked_value", "")
        return Input.__call__(self, field, **kwargs)
