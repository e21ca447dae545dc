"""The base of every error a user can act on.

The CLI and the server print these messages as they are (no traceback), so each one names the
problem and the fix. Bugs stay ordinary exceptions and keep their tracebacks.
"""


class Ar3dError(Exception):
    """A problem with the user's input, files or set-up, with a message that says what to do."""
