"""The experiments area (scope `export`): each offer's experiment with its measured lift, and the
assignments as a file."""
