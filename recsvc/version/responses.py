"""A version's NPS answers as arrays (written by `training.publish.responses`, mapped by the
service for `GET /v1/nps/summary` and `GET /v1/nps/themes`, and to know which live answers a version
already holds).

Files in the version directory (all arrays 1-d, one entry per answer, sorted by `key`, unless noted):

- `nps_responses.json`: `ResponseTableFile`, the counts, touchpoint names and group labels.
- `nps_responses_key.npy` (uint64): `stable_key(response_id)` (`recsvc.version.artifacts.id_keys`),
  for spotting live duplicates (`ResponseTable.holds`).
- `nps_responses_customer.npy` (int32): the customer's index in the artifact, -1 if not in it.
- `nps_responses_score.npy` (int8), `nps_responses_time.npy` (int64, UTC seconds since 1970),
  `nps_responses_touchpoint.npy` (int16, index into `touchpoints`).
- `nps_customer_groups.npy` (int32, customers x 3): each customer's code in `groups[column]` for
  primary segment, country and age band, in `GROUP_COLUMNS` order.
- the comments and their themes, row for row: `recsvc.version.comments` (versions written before
  them have none: `ResponseTable.comments` is None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

from recsvc.errors import ArtifactError
from recsvc.version.artifacts import holds_keys, id_keys, load_array, reason, where
from recsvc.version.comments import COMMENT_FILES, ResponseComments

RESPONSES_JSON: Final = "nps_responses.json"
RESPONSE_KEYS: Final = "nps_responses_key.npy"
RESPONSE_CUSTOMERS: Final = "nps_responses_customer.npy"
RESPONSE_SCORES: Final = "nps_responses_score.npy"
RESPONSE_TIMES: Final = "nps_responses_time.npy"
RESPONSE_TOUCHPOINTS: Final = "nps_responses_touchpoint.npy"
CUSTOMER_GROUPS: Final = "nps_customer_groups.npy"
RESPONSE_FILES: Final = (
    RESPONSES_JSON,
    RESPONSE_KEYS,
    RESPONSE_CUSTOMERS,
    RESPONSE_SCORES,
    RESPONSE_TIMES,
    RESPONSE_TOUCHPOINTS,
    CUSTOMER_GROUPS,
    *COMMENT_FILES,
)
RESPONSE_TABLE_FORMAT: Final = 1
# The customer attributes a summary can group by, as columns of `nps_customer_groups.npy`.
GROUP_COLUMNS: Final = ("segment", "country", "age_band")
NOT_GIVEN: Final = "(not given)"  # the report's label for a missing value


class ResponseTableFile(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = RESPONSE_TABLE_FORMAT
    responses: int
    customers: int
    touchpoints: list[str]
    groups: dict[str, list[str]]  # column of GROUP_COLUMNS -> label of each code
    # The theme bits' names, in bit order; None: written before comments were kept (no files).
    themes: list[str] | None = None


_file_decoder = msgspec.json.Decoder(ResponseTableFile)


@dataclass(frozen=True, slots=True)
class ResponseTable:
    """A version's NPS answers, memory-mapped (see the module docstring)."""

    keys: np.ndarray
    customers: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    touchpoints: np.ndarray
    customer_groups: np.ndarray
    touchpoint_names: tuple[str, ...]
    group_labels: dict[str, tuple[str, ...]]
    # The answers' comments and themes; None for versions written before they were kept.
    comments: ResponseComments | None = None

    @classmethod
    def open(cls, directory: Path, n_customers: int) -> ResponseTable | None:
        """The version's table; None when the version has none (trained before it existed)."""
        path = directory / RESPONSES_JSON
        if not path.exists():
            return None
        try:
            info = _file_decoder.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ArtifactError(f"{where(path)}: unreadable: {reason(exc)}") from None
        if info.format_version != RESPONSE_TABLE_FORMAT:
            raise ArtifactError(f"{where(path)}: format {info.format_version} is not supported")
        table = cls(
            keys=load_array(directory / RESPONSE_KEYS, "uint64"),
            customers=load_array(directory / RESPONSE_CUSTOMERS, "int32"),
            scores=load_array(directory / RESPONSE_SCORES, "int8"),
            times=load_array(directory / RESPONSE_TIMES, "int64"),
            touchpoints=load_array(directory / RESPONSE_TOUCHPOINTS, "int16"),
            customer_groups=load_array(directory / CUSTOMER_GROUPS, "int32", ndim=2),
            touchpoint_names=tuple(info.touchpoints),
            group_labels={name: tuple(info.groups.get(name, ())) for name in GROUP_COLUMNS},
            comments=(
                ResponseComments.open(directory, info.responses, info.themes)
                if info.themes is not None
                else None
            ),
        )
        sizes = {
            a.shape[0]
            for a in (table.keys, table.customers, table.scores, table.times, table.touchpoints)
        }
        if sizes != {info.responses}:
            raise ArtifactError(
                f"version {directory.name}: NPS answer arrays disagree with {RESPONSES_JSON}"
            )
        if table.customer_groups.shape != (n_customers, len(GROUP_COLUMNS)) or (
            info.customers != n_customers
        ):
            raise ArtifactError(
                f"version {directory.name}: {CUSTOMER_GROUPS} does not match the artifact's {n_customers} customers"
            )
        return table

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def holds(self, response_ids: Sequence[str]) -> list[bool]:
        """Which of these response ids the table already holds."""
        return [bool(x) for x in holds_keys(self.keys, id_keys(response_ids))]
