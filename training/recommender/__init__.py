"""The recommender: dataset and feature spaces, the LightFM fit, evaluation against baselines,
metrics and the per-customer candidate lists."""
