"""Why a record was dead-lettered: the reason codes every side reads (scorer, metrics, docs)."""

# In the order the scorer checks them: a record gets the first that applies.
TOO_LARGE = "TOO_LARGE"
DECODE_ERROR = "DECODE_ERROR"
MISSING_FIELD = "MISSING_FIELD"
WRONG_TYPE = "WRONG_TYPE"
NOT_FINITE = "NOT_FINITE"
OUT_OF_RANGE = "OUT_OF_RANGE"
REASONS = (TOO_LARGE, DECODE_ERROR, MISSING_FIELD, WRONG_TYPE, NOT_FINITE, OUT_OF_RANGE)
