"""The recommender: dataset and feature spaces, the run's training data split at the hold-out, the
LightFM fit, evaluation against baselines, metrics and the per-customer candidate lists."""
