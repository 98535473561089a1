"""The one exception type a user sees: a problem with their input, and how to fix it."""


class StdoError(Exception):
    """Bad input or an impossible request.

    The message is one line that names the problem and the fix; the CLIs print it
    without a traceback and exit with code 2.
    """
