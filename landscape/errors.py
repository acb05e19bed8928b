"""The one exception type the library raises for bad input; the CLI prints it as one line."""


class LandscapeError(Exception):
    """A user-facing error: bad input, missing data, a checkpoint that does not fit."""
