"""Offer experiments in the training run: outcomes from the shop's tables, and their analysis."""
