"""The NPS answer arrays of a version, which the service's `GET /v1/nps/summary` maps (format:
`recsvc.service.nps_summary`).

Written into the artifact directory before the manifest, so the manifest lists and hashes them.
Vectorised except for the response-id keys (one hash per answer: about a second per million).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from recsvc.domain import columns as c
from recsvc.domain import customer_table as ct
from recsvc.domain.contract import TOUCHPOINTS
from recsvc.version.artifacts import id_keys
from recsvc.version.responses import (
    CUSTOMER_GROUPS,
    GROUP_COLUMNS,
    NOT_GIVEN,
    RESPONSE_CUSTOMERS,
    RESPONSE_FILES,
    RESPONSE_KEYS,
    RESPONSE_SCORES,
    RESPONSE_TIMES,
    RESPONSE_TOUCHPOINTS,
    RESPONSES_JSON,
    ResponseTableFile,
)

# Where each group column of the summary comes from in the customer table.
_SOURCES = {"segment": ct.PRIMARY_SEGMENT, "country": c.COUNTRY, "age_band": c.AGE_BAND}
_INDEX = "_index"


def _customer_groups(
    customer_table: pl.DataFrame, customer_ids: np.ndarray
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Per artifact customer, the code of their primary segment, country and age band."""
    ids = pl.Series(c.CUSTOMER_ID, customer_ids, dtype=pl.String).to_frame()
    present = [_SOURCES[name] for name in GROUP_COLUMNS if _SOURCES[name] in customer_table.columns]
    aligned = ids.join(
        customer_table.select(c.CUSTOMER_ID, *present),
        on=c.CUSTOMER_ID,
        how="left",
        maintain_order="left",
    )
    codes = np.empty((aligned.height, len(GROUP_COLUMNS)), dtype=np.int32)
    labels: dict[str, list[str]] = {}
    for j, name in enumerate(GROUP_COLUMNS):
        source = _SOURCES[name]
        values = (
            aligned[source].cast(pl.String).fill_null(NOT_GIVEN)
            if source in aligned.columns
            else pl.Series(source, [NOT_GIVEN] * aligned.height, dtype=pl.String)
        )
        names = sorted(set(values.unique().to_list()) | {NOT_GIVEN})
        labels[name] = names
        codes[:, j] = values.replace_strict(
            {label: k for k, label in enumerate(names)}, return_dtype=pl.Int32
        ).to_numpy()
    return codes, labels


def write_response_table(
    nps_responses: pl.DataFrame | pl.LazyFrame,
    customer_table: pl.DataFrame,
    customer_ids: np.ndarray,
    directory: Path,
) -> list[str]:
    """Write the version's NPS answers (the validated `nps_responses` table) and each customer's
    groups (primary segment, country, age band from `customer_table`) into `directory`.

    `customer_ids` is the artifact's sorted customer id array. Returns the names of the files written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    index = pl.DataFrame(
        {
            c.CUSTOMER_ID: pl.Series(customer_ids, dtype=pl.String),
            _INDEX: np.arange(customer_ids.size, dtype=np.int32),
        }
    )
    touchpoints = list(TOUCHPOINTS)
    answers = (
        nps_responses.lazy()
        .select(c.RESPONSE_ID, c.CUSTOMER_ID, c.SCORE, c.RESPONDED_AT, c.TOUCHPOINT)
        .join(index.lazy(), on=c.CUSTOMER_ID, how="left")
        .select(
            pl.col(c.RESPONSE_ID),
            pl.col(_INDEX).fill_null(-1).cast(pl.Int32),
            pl.col(c.SCORE).cast(pl.Int8),
            pl.col(c.RESPONDED_AT).dt.epoch("s").cast(pl.Int64).alias(c.RESPONDED_AT),
            pl.col(c.TOUCHPOINT)
            .replace_strict({t: k for k, t in enumerate(touchpoints)}, return_dtype=pl.Int16)
            .alias(c.TOUCHPOINT),
        )
        .collect()
    )
    keys = id_keys(answers[c.RESPONSE_ID].to_list())
    order = np.argsort(keys, kind="stable")
    columns = {
        RESPONSE_KEYS: keys[order],
        RESPONSE_CUSTOMERS: answers[_INDEX].to_numpy()[order],
        RESPONSE_SCORES: answers[c.SCORE].to_numpy()[order],
        RESPONSE_TIMES: answers[c.RESPONDED_AT].to_numpy()[order],
        RESPONSE_TOUCHPOINTS: answers[c.TOUCHPOINT].to_numpy()[order],
    }
    for name, array in columns.items():
        np.save(directory / name, np.ascontiguousarray(array), allow_pickle=False)
    codes, labels = _customer_groups(customer_table, customer_ids)
    np.save(directory / CUSTOMER_GROUPS, codes, allow_pickle=False)
    info = ResponseTableFile(
        responses=answers.height,
        customers=int(customer_ids.size),
        touchpoints=touchpoints,
        groups=labels,
    )
    (directory / RESPONSES_JSON).write_bytes(msgspec.json.format(msgspec.json.encode(info)))
    return list(RESPONSE_FILES)
