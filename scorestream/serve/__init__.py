"""`scorestream serve`: request-reply scoring over Kafka behind an HTTP API (FastAPI)."""
