"""Errors a user can fix. The CLI prints them as one line and exits with code 2, no traceback."""


class LlmkitError(Exception):
    """A problem with the user's input (config, data, model name, paths)."""

    exit_code = 2


class ConfigError(LlmkitError):
    """An unknown key, a wrong type, a bad value or a missing recipe file."""


class DataError(LlmkitError):
    """A data file that cannot be read, or a record that is wrong (names file, row and problem)."""


class EvalInputError(LlmkitError, ValueError):
    """Predictions and references that cannot be scored (lengths differ, empty, wrong types)."""
