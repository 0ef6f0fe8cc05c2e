"""The storefront area (scope `recommend`): per-customer recommendations and segment offers."""
