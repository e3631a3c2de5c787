"""Errors of the monitoring package (DriftError, shared with the contract, is in
scorestream.errors)."""

from scorestream.errors import ScorestreamError


class MetricsError(ScorestreamError):
    """A metric update has a value outside its declared, bounded set."""
