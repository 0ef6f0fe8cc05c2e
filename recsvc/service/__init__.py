"""Serving-only logic, below HTTP: the model a worker holds, recommendations, offers, a customer's
live state, NPS summaries and comment themes, intake checks, exports and the service's settings."""
