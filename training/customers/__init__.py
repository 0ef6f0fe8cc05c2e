"""The customer table: per-customer features (NPS, RFM, churn, deliveries), the table they make, and
segment membership."""
