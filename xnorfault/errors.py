"""User-facing errors.

Anything a user can get wrong (a value out of range, a missing file, a malformed device
description) raises :class:`XnorfaultError` with a one-line message that says what was wrong
and how to mend it. The CLI prints that line and exits with status 2, never a traceback.
"""


class XnorfaultError(ValueError):
    """Bad input: the message is a single line meant for the user."""
