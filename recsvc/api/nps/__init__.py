"""The NPS insights area (scope `export`): NPS summaries from the active version plus live answers."""
