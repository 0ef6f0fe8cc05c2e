"""Offer experiments in the nightly run: outcome tables per experiment and their analysis."""
