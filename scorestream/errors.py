"""The root exception every scorestream error derives from, so the CLI can report it cleanly."""


class ScorestreamError(Exception):
    """A failure the user can act on; the CLI prints its message and exits non-zero."""


class ConfigError(ScorestreamError):
    """A setting, flag or file has a value we cannot use."""


class StackError(ScorestreamError):
    """The local Kafka stack could not be started, reached or stopped."""


class ModelError(ScorestreamError):
    """A model version is missing, corrupt or does not fit the events."""


class DriftError(ScorestreamError):
    """A reference profile, count vector or drift window has a shape or value we cannot use."""


class DataError(ScorestreamError):
    """Training or scoring data does not match its feature spec."""
