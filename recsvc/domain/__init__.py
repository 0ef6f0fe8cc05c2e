"""What both sides share: the data contract, column names, NPS math, segment rules, comment themes,
the feature scheme, live NPS answers and the time convention. No HTTP, Redis or polars on import."""
