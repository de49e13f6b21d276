"""Churn: the probability that a customer is still alive, fitted offline and used by the engine."""
