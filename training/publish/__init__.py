"""What a run writes into a version besides the model: profile and segment tables, NPS answers."""
