"""Errors that a user can act on.

Every check on user input raises :class:`InputError` with one sentence that names the
file or configuration key at fault and says what was expected, so that the workflow can
stop before any work and print exactly that sentence.
"""


class InputError(ValueError):
    """Bad user input: a file, a data set or a configuration value."""
