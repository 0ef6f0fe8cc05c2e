"""Segment exports for marketers: a segment's members as CSV, NDJSON or Parquet, streamed.

Rows are read from the memory-mapped profile records (`recsvc.version.profiles`) in chunks of `CHUNK_ROWS`
customers and written chunk by chunk, so memory stays flat however large the segment: at most one
chunk of rows, plus the member index arrays (4 bytes a member).

`since_version=V` exports only the change against an earlier stored version V, as audience syncs
do: customers who entered the segment (`change=entered`) and those who left it (`change=exited`),
entered ones first, each group in customer id order. An exited customer who is still a customer
shows their current attributes; one who is gone from the current version shows V's.

CSV (RFC 4180: `\r\n` line ends, a value holding a comma, quote, CR or LF in quotes): a header row,
empty cells for missing values, yes/no as `true`/`false`, lists joined with `|`. A text cell a
spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a CR and is not a
plain number such as `-12.5`) is written with a leading `'`, as OWASP's "CSV Injection" advises:
customer attributes are the shop's customers' own words. NDJSON: one JSON object per line, missing
values `null`, lists as lists. Parquet: one row group per chunk, typed columns (dates and datetimes
as such); polars is imported only for this format.

The segment membership history (`memberships.py`: one row per spell a customer spent in a
segment, replayed from the store's membership journal) goes through the same encoders.

An export that fails part-way (say a record that no longer decodes) is logged as one line and raises
`ExportFailed`: the server drops the connection before the body's end (or, when it has sent nothing
yet, answers 500), so no HTTP client takes a short file for the whole one. Nothing is added to the
body to say so.
"""
