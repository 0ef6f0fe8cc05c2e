"""A stored model version opened the way a worker serves it: arrays, profiles, segment rules, NPS
answers and order history, every file checked against the manifest's SHA-256 first.

The store calls `open_checked` before it moves the active pointer, and every worker opens versions
with it, so a version that would not serve is refused by name instead of being activated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from recsvc.domain.customer_table import COLUMNS
from recsvc.domain.privacy import masks
from recsvc.domain.segments.catalog import SegmentRules, parse_segments
from recsvc.errors import ArtifactError, ConfigError
from recsvc.version.artifacts import SEGMENT_RULES_FILE, LoadedModel, load_model
from recsvc.version.erased import ErasedRows, erasures_as_of
from recsvc.version.orders import OrderHistory
from recsvc.version.profiles import Profiles
from recsvc.version.responses import ResponseTable


@dataclass(frozen=True, slots=True)
class ActiveModel:
    version: str
    loaded: LoadedModel
    profiles: Profiles
    rules: SegmentRules
    # The version's NPS answers for summaries; None for versions trained before they were written.
    responses: ResponseTable | None = None
    # The version's orders as live order lines need them; None for versions written before.
    orders: OrderHistory | None = None
    # The customers this worker hides from the version (erased after its data was suppressed).
    erased: ErasedRows | None = None

    def masks(self, erased_at: dt.datetime | None) -> bool:
        """Whether this version must treat a customer erased at `erased_at` as unknown."""
        return masks(erased_at, self.erased.as_of if self.erased else None)

    def profile_index(self, customer_id: str, erased_at: dt.datetime | None) -> int | None:
        """The customer's row as this version may show it: None for a customer it does not know,
        or one erased (at `erased_at`) after its data."""
        return None if self.masks(erased_at) else self.profiles.index_of(customer_id)


def open_version(loaded: LoadedModel) -> ActiveModel:
    """Everything the service serves from one version: arrays, profiles, segment rules, answers."""
    profiles = Profiles.open(loaded.directory, loaded.customer_ids)
    extras = [col.name for col in profiles.columns if col.name not in COLUMNS]
    path = loaded.directory / SEGMENT_RULES_FILE
    try:
        rules = parse_segments([(path.name, path.read_text())], extra_columns=extras)
    except (OSError, ConfigError) as exc:
        raise ArtifactError(
            f"version {loaded.manifest.version}: {path.name}: cannot load the segment rules: {exc}"
        ) from None
    responses = ResponseTable.open(loaded.directory, int(loaded.customer_ids.size))
    orders = OrderHistory.open(loaded.directory, int(loaded.customer_ids.size))
    # Built now, in the loader's thread, rather than by the first request after the swap.
    loaded.item_id_list, loaded.item_category_names  # noqa: B018
    erased = ErasedRows(loaded.customer_ids, erasures_as_of(loaded.manifest.notes))
    return ActiveModel(loaded.manifest.version, loaded, profiles, rules, responses, orders, erased)


def open_checked(directory: Path) -> ActiveModel:
    """Open a version directory as a worker serves it, after checking every file's size and
    SHA-256 against the manifest; ArtifactError naming the file that is wrong."""
    return open_version(load_model(directory, verify_hashes=True))
