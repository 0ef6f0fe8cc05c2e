"""The customer table: per-customer features (NPS, RFM, churn, deliveries) and segment membership."""
