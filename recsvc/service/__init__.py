"""Serving-only logic, below HTTP: the model a worker holds, recommendations, offers, a customer's
live state, NPS summaries, intake checks, exports and the service's settings."""
