"""The one error type users can cause.

Anything raised as `NlfsError` is the user's to fix (bad file, bad flag, unreachable store) and
becomes a one-line message and exit code 2 in `nlfs.cli.main`; every other exception is a bug.
"""


class NlfsError(Exception):
    """A user-caused error with a one-line, human-readable message."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # one line, always
