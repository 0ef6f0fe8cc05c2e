"""The trained-version format, written by training and read by the service: manifest, arrays,
scoring, profiles, NPS answers and their comments, and opening a version as a worker serves it."""
