"""Validated ingestion: a data folder checked against the data contract, clean tables, quarantine
and report. One field (fields, with lexicon and timestamps), one table's rows (rows), the folder
(dataset, folder), the report (report)."""
