"""Moved to :mod:`portal.files.ofd`; kept until the callers are updated."""

from portal.files.ofd import *  # noqa: F401,F403
from portal.files.ofd import get_font  # noqa: F401
