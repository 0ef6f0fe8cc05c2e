"""The customers area (scope `export`): one customer's profile."""
