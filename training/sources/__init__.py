"""Where a shop's data comes from besides its own files: the demo generator, its feedback model,
and the UCI Online Retail importer."""
