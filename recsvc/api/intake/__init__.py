"""The intake area (scope `ingest`): live NPS responses in, detractor webhooks out."""
