"""The NPS report: its shape (model), its numbers (build), comment themes, and the self-contained
HTML page."""
