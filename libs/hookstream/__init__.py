"""hookstream: webhook-driven order processing on Kafka."""

__version__ = "0.1.0"
