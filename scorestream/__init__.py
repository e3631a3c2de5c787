"""scorestream: real-time ML scoring over Kafka with Spark Structured Streaming."""

__version__ = "0.1.0"
