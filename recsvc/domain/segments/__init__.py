"""Declared customer segments: the segments file, its small expression language, and evaluation
(see `rules` for the language)."""
