"""Where a shop's data comes from besides its own files: the demo generator (generate, with shop,
purchases, draws), its feedback model (feedback_model, comments), the UCI Online Retail
importer (online_retail, with retail_lines, retail_categories, retail_report), and the public data
sets the benchmarks download from PyPI (public_sets; bench/public_data.py fetches them)."""
