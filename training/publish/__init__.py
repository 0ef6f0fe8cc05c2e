"""A version's artifact and whether it goes out: arrays and manifest (artifact), profile and segment
tables (profiles), NPS answers (responses), and the quality gate (gate)."""
