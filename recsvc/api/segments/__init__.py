"""The segments area (scope `export`): segment sizes and NPS, member exports."""
