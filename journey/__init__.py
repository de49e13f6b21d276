"""journey: a customer-journey stream processor on Apache Kafka."""

__version__ = "0.1.0"
