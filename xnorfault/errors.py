"""User-facing errors.

Anything a user can get wrong (a value out of range, a missing file, a malformed device
description) raises :class:`XnorfaultError` with a one-line message that says what was wrong
and how to mend it. The CLI prints that line and exits with status 2, never a traceback.
"""

from contextvars import ContextVar


class XnorfaultError(ValueError):
    """Bad input: the message is a single line meant for the user."""


# True while the command line runs a command: the API's errors then keep the command line's
# --flag names; called from Python they name the function's parameters instead
IN_COMMAND_LINE: ContextVar[bool] = ContextVar("xnorfault_in_command_line", default=False)
