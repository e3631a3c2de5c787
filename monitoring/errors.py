"""Errors of the monitoring package: a profile or count vector that cannot be compared."""

from scorestream.errors import ScorestreamError


class DriftError(ScorestreamError):
    """A reference profile, count vector or drift window has a shape or value we cannot use."""


class MetricsError(ScorestreamError):
    """A metric update has a value outside its declared, bounded set."""
