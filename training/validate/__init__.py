"""Validated ingestion: a data folder checked against the data contract, clean tables, quarantine
and report."""
