"""The NPS report: its numbers (build), comment themes, and the self-contained HTML page."""
