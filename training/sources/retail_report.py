"""What the Online Retail import did, for machines (`_import_report.json`: `ImportSummary`) and for
people (PROVENANCE.md, which says what is real and what is simulated, and the terminal summary).
"""

from __future__ import annotations

import msgspec

SOURCE_LICENSE = "CC BY 4.0"
SOURCE_CITATION = (
    "Chen, D., Sain, S. L. and Guo, K. (2012). Data mining for the online retail industry: a case "
    "study of RFM model-based customer segmentation using data mining. Journal of Database Marketing "
    "and Customer Strategy Management 19, 197-208. doi:10.1057/dbm.2012.17"
)
ONLINE_RETAIL = 'UCI Machine Learning Repository, dataset 352 "Online Retail"'
ONLINE_RETAIL_II = 'UCI Machine Learning Repository, dataset 502 "Online Retail II"'


class ImportSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the importer read, set aside and wrote. `*_lines` count source lines unless said otherwise.

    lines_read = guest_lines + non_product_lines + invalid_lines + purchase_lines + cancellation_lines,
    and cancellation_lines = matched_cancellation_lines + unmatched_cancellation_lines.
    """

    source: str
    source_sha256: str
    # "Online Retail" or "Online Retail II", told apart by the header spelling.
    release: str
    seed: int
    first_order_date: str | None
    last_order_date: str | None
    lines_read: int
    guest_lines: int
    non_product_lines: int
    non_product_by_code: dict[str, int]
    invalid_lines: int
    purchase_lines: int
    cancellation_lines: int
    matched_cancellation_lines: int
    unmatched_cancellation_lines: int
    unmatched_cancelled_quantity: int
    # Source lines folded into another line of the same invoice and stock code.
    merged_duplicate_lines: int
    customers: int
    products: int
    invoices: int
    order_lines: int
    delivered_lines: int
    returned_lines: int
    # Purchase lines partly cancelled, written as a returned and a delivered order line.
    split_lines: int
    returned_quantity: int
    nps_responses: int
    csat_responses: int
    ces_responses: int
    seconds: float = 0.0


def provenance_markdown(summary: ImportSummary) -> str:
    """PROVENANCE.md: what in the output is real, what is simulated, and where the real part is from."""
    source = ONLINE_RETAIL_II if summary.release == "Online Retail II" else ONLINE_RETAIL
    codes = ", ".join(f"{code} {n:,}" for code, n in summary.non_product_by_code.items()) or "none"
    return f"""# Provenance of this data directory

**Purchases are REAL. NPS, CSAT and CES responses are SIMULATED.**

## Real: customers, products, orders

Built from the real purchase history in `{summary.source}` (sha256 `{summary.source_sha256}`).

- Source: {source}: the order lines of a UK-based online retailer of gifts and homeware,
  {summary.first_order_date} to {summary.last_order_date}.
- Licence: {SOURCE_LICENSE}. Credit the source wherever results from it are shown.
- Cite: {SOURCE_CITATION}.

Not in the source, so not invented: age bands, brands and delivery dates are null. Categories are
derived from product descriptions by a keyword rule, prices are each product's median unit price, and
cancellations are applied as returns of the purchases they cancel (rules: docs/online-retail.md).

## Simulated: nps_responses, csat_responses, ces_responses

Drawn by `training.sources.feedback_model` (seed {summary.seed}) from the purchases above. The shop surveyed
no one: no score, comment or response time in these tables is a real customer's answer, and results
built on them are not findings about real customers' satisfaction.

## Set aside ({summary.lines_read:,} source lines read)

| source lines | count |
|---|---:|
| guest checkouts (no customer id) | {summary.guest_lines:,} |
| non-product codes (postage, fees, discounts, ...) | {summary.non_product_lines:,} |
| invalid (quantity of the wrong sign, price <= 0, unreadable value) | {summary.invalid_lines:,} |
| cancellations with no earlier purchase to return | {summary.unmatched_cancellation_lines:,} |

Non-product codes: {codes}.

## Written

| table | rows |
|---|---:|
| customers | {summary.customers:,} |
| products | {summary.products:,} |
| orders ({summary.invoices:,} invoices; {summary.returned_lines:,} lines returned) | {summary.order_lines:,} |
| nps_responses (simulated) | {summary.nps_responses:,} |
| csat_responses (simulated) | {summary.csat_responses:,} |
| ces_responses (simulated) | {summary.ces_responses:,} |

The same counts, machine-readable: `_import_report.json`.
"""


def format_summary(summary: ImportSummary) -> str:
    """A few lines for the terminal."""
    s = summary
    return "\n".join(
        [
            f"imported {s.source} ({s.release}): {s.lines_read:,} lines in {s.seconds:.1f}s",
            f"  kept: {s.purchase_lines:,} purchase lines, {s.matched_cancellation_lines:,} "
            f"cancellation lines applied as returns ({s.merged_duplicate_lines:,} repeated lines merged)",
            f"  set aside: {s.guest_lines:,} guest, {s.non_product_lines:,} non-product, "
            f"{s.invalid_lines:,} invalid, {s.unmatched_cancellation_lines:,} unmatched cancellation lines",
            f"  wrote: {s.customers:,} customers, {s.products:,} products, {s.order_lines:,} order "
            f"lines ({s.returned_lines:,} returned, {s.split_lines:,} purchase lines split)",
            f"  simulated: {s.nps_responses:,} NPS, {s.csat_responses:,} CSAT, {s.ces_responses:,} "
            f"CES responses (labelled in PROVENANCE.md)",
        ]
    )
