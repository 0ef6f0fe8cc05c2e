"""The artifact format: one directory per model version, described by `manifest.json`.

Arrays are `.npy` files, loaded memory-mapped so several worker processes share one copy in the
page cache. The manifest lists every file with its size and SHA-256; loading checks the format
version and the sizes (and, on request, the hashes), and a corrupt or incompatible artifact is an
`ArtifactError` naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import mmap
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from recsvc.domain.features import USER_FIELDS, feature_name, price_band_index
from recsvc.domain.live import stable_key
from recsvc.errors import ArtifactError
from recsvc.version.neighbours import (
    AlikeParams,
    SimilarLists,
    buyer_weights,
    first_buyers,
    item_buyers,
    trend_lift,
    unit_vectors,
)
from recsvc.version.scoring import BlendParams, Candidates, ModelArrays, Purchases, item_space

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# The segment rules the version was built with (a self-contained segments file).
SEGMENT_RULES_FILE = "segment_rules.toml"


class FileEntry(msgspec.Struct, frozen=True):
    size: int
    sha256: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int
    version: str
    created_at: str
    # Day number (days since 1970-01-01) of the latest purchase the published model was fitted on.
    trained_until_day: int
    n_customers: int
    n_items: int
    components: int
    identity_weight: float
    user_fields: list[str]
    item_fields: list[str]
    price_edges: list[float]
    blend: BlendParams
    data_fingerprint: str
    config: dict[str, Any]
    metrics: dict[str, Any] = {}
    files: dict[str, FileEntry] = {}
    # Filled by later formats without breaking older artifacts.
    notes: dict[str, str] = {}
    # A blend's leading LightFM columns of the item vectors (`scoring.ModelArrays.lightfm_dims`);
    # 0: the vectors are LightFM's alone.
    lightfm_components: int = 0
    # How much what a cart's products' buyers also bought weighs against the model in a cart's
    # suggestions (`recsvc.version.carts`), chosen on the hold-out; 0 (and older versions): the
    # model alone.
    cart_alike_weight: float = 0.0
    # How bought-alike neighbours are weighed (`recsvc.version.neighbours.AlikeParams`), chosen on
    # the hold-out; 0 and 0 (and older versions): the plain share of the product's buyers.
    alike_buyer_power: float = 0.0
    alike_trend_weight: float = 0.0


# Arrays of a version: file stem -> (dtype, ndim); checked on load.
ARRAYS: dict[str, tuple[str, int]] = {
    "item_ids": ("U", 1),
    "item_vectors": ("float32", 2),
    "item_biases": ("float32", 1),
    "item_category": ("int32", 1),
    "item_in_stock": ("bool", 1),
    "item_price": ("float32", 1),
    "item_reorder_days": ("float32", 1),
    "item_popularity": ("float32", 1),
    "customer_ids": ("U", 1),
    "customer_features": ("int32", 2),
    "customer_has_identity": ("bool", 1),
    "user_feature_vectors": ("float32", 2),
    "user_feature_biases": ("float32", 1),
    "purchases_indptr": ("int64", 1),
    "purchases_items": ("int32", 1),
    "purchases_counts": ("int32", 1),
    "purchases_last_day": ("int32", 1),
}
# Arrays a version may carry (older versions load without them): each customer's precomputed best
# items (`recsvc.version.scoring.Candidates`), which spare most requests the scoring of the whole
# catalogue, each product's precomputed neighbours (`recsvc.version.neighbours.SimilarLists`),
# which spare a product page the summing of its buyers' purchases, each purchase's
# recency-weighted frequency (`Purchases.recency_weighted`; without it buy-again counts lines)
# and each product's repeat rate (`LoadedModel.item_repeat_rate`).
OPTIONAL_ARRAYS: dict[str, tuple[str, int]] = {
    "purchases_recency_weighted": ("float32", 1),
    "item_repeat_rate": ("float32", 1),
    "candidate_items": ("int32", 2),
    "candidate_scores": ("float32", 2),
    "similar_items": ("int32", 2),
    "similar_scores": ("float32", 2),
    "similar_reasons": ("uint8", 2),
    "item_input_vectors": ("float32", 2),  # blends only (`scoring.ModelArrays`)
}
# Arrays read at a random row on every recommendation request: their page tables are filled when the
# version is opened (in the background loader), so requests take no page faults on them.
PREFAULTED = frozenset(
    {
        "customer_ids",
        "customer_features",
        "customer_has_identity",
        "candidate_items",
        "candidate_scores",
        "similar_items",
        "similar_scores",
        "similar_reasons",
    }
)
# Linux's MADV_POPULATE_READ (5.14+); Python 3.11's mmap module does not name it.
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)
# Lists of strings a version needs besides the arrays.
LISTS = ("categories", "user_feature_names")

_manifest_decoder = msgspec.json.Decoder(Manifest)
_encoder = msgspec.json.Encoder()


def where(path: Path) -> str:
    """How an error names a file of a version: `<version directory>/<file>`, never an absolute
    path (error messages reach clients; where the store keeps its files is ours)."""
    return f"{path.parent.name}/{path.name}"


def reason(exc: Exception) -> str:
    """What went wrong reading a file, without the absolute path an OSError repeats."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(directory: Path) -> dict[str, FileEntry]:
    """Size and SHA-256 of every file of an artifact directory but the manifest itself."""
    return {
        path.name: FileEntry(path.stat().st_size, sha256_of(path))
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST
    }


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        manifest = _manifest_decoder.decode(path.read_bytes())
    except FileNotFoundError:
        raise ArtifactError(f"version {directory.name}: not an artifact (no {MANIFEST})") from None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArtifactError(f"{where(path)}: unreadable manifest: {reason(exc)}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise ArtifactError(
            f"{where(path)}: artifact format {manifest.format_version} is not supported "
            f"(this build reads format {FORMAT_VERSION}); retrain or upgrade"
        )
    return manifest


class LoadedModel(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """A version ready to score: manifest, arrays and lookup tables."""

    manifest: Manifest
    directory: Path
    arrays: ModelArrays
    item_ids: np.ndarray
    customer_ids: np.ndarray
    item_category: np.ndarray
    item_in_stock: np.ndarray
    item_price: np.ndarray
    item_popularity: np.ndarray
    categories: list[str]
    user_feature_names: list[str]  # attribute feature j is row n_customers + j
    user_feature_index: dict[str, int]
    candidates: Candidates | None = None
    similar: SimilarLists | None = None
    # float32 (n_items,): the share of each product's buyers who bought it in two orders or more
    # (Laplace-smoothed), what buy-again weighs by `BlendParams.repeat`; None in older versions.
    item_repeat_rate: np.ndarray | None = None

    @functools.cached_property
    def item_id_list(self) -> list[str]:
        """The item ids as Python strings (what a response carries), looked up without numpy."""
        return self.item_ids.tolist()

    @functools.cached_property
    def item_category_names(self) -> list[str]:
        """Each item's category name, by item index."""
        return [self.categories[c] for c in self.item_category.tolist()]

    @functools.cached_property
    def item_price_band(self) -> np.ndarray:
        """Each item's price band (index into PRICE_BANDS, -1 unpriced), computed on first use."""
        return price_band_index(self.item_price, self.manifest.price_edges)

    @functools.cached_property
    def item_unit_vectors(self) -> np.ndarray:
        """Each item's vector scaled to length 1 (cosine similarity is then a dot product), made
        on first use (similar products)."""
        return unit_vectors(item_space(self.arrays))

    @functools.cached_property
    def item_buyers(self) -> tuple[np.ndarray, np.ndarray]:
        """Who bought each item: the purchase history turned around (item -> customer rows, CSR:
        indptr int64, rows int32) for carts and for similar products a version's lists cannot
        answer, 4 bytes per purchase row; the model holder builds it when it loads a version,
        before serving it."""
        return item_buyers(self.arrays.purchases, self.item_ids.size)

    def buyers_of(self, item: int) -> np.ndarray:
        """The customer rows who bought `item`, at most BUYERS_READ of them (`first_buyers`)."""
        return first_buyers(self.item_buyers, item)

    @property
    def alike_params(self) -> AlikeParams:
        return AlikeParams(
            buyer_power=self.manifest.alike_buyer_power,
            trend_weight=self.manifest.alike_trend_weight,
        )

    @functools.cached_property
    def alike_buyer_weights(self) -> np.ndarray:
        """What each customer's purchases count in a bought-alike share (`buyer_weights`)."""
        return buyer_weights(self.arrays.purchases, self.manifest.alike_buyer_power)

    @functools.cached_property
    def alike_lift(self) -> np.ndarray:
        """Each product's bought-alike lift for what sells now (`trend_lift`)."""
        return trend_lift(
            self.arrays.purchases,
            self.item_ids.size,
            self.manifest.trained_until_day,
            self.manifest.alike_trend_weight,
        )

    @functools.cached_property
    def _segment_popularity(self) -> dict[str, np.ndarray]:
        return {}

    def segment_popularity(self, segment: str | None) -> np.ndarray:
        """How many of the segment's customers bought each item (float32, ties broken by the
        whole shop's recent popularity): the personalisation experiment's holdout ranking. Made on
        first use per segment, one pass over the purchases; the shop's popularity for a segment
        the version does not know."""
        row = self.user_feature_index.get(feature_name("primary_segment", segment))
        if segment is None or row is None:
            return self.item_popularity
        cache = self._segment_popularity
        found = cache.get(segment)
        if found is None:
            members = self.arrays.customer_features[:, _SEGMENT_FIELD] == row
            purchases = self.arrays.purchases
            owned = np.repeat(members, np.diff(np.asarray(purchases.indptr)))
            counts = np.bincount(
                np.asarray(purchases.items)[owned], minlength=self.item_ids.size
            ).astype(np.float32)
            popularity = np.asarray(self.item_popularity, dtype=np.float32)
            top = float(popularity.max()) if popularity.size else 0.0
            found = counts + popularity / np.float32(top + 1.0)
            cache[segment] = found
        return found

    def customer_index(self, customer_id: str) -> int | None:
        return find_sorted(self.customer_ids, customer_id)

    def item_index(self, product_id: str) -> int | None:
        return find_sorted(self.item_ids, product_id)


_SEGMENT_FIELD = USER_FIELDS.index("primary_segment")


def find_sorted(ids: np.ndarray, key: str) -> int | None:
    """The position of `key` in a version's sorted id array, or None: a binary search, O(log n),
    copying nothing whatever the key.

    numpy compares at the wider of the two widths: a key longer than the array's strings would
    widen (copy) the whole array first, 512 MB for a 128-character key and a million customers.
    Such a key cannot be one of the ids, so it is answered before numpy sees it.
    """
    if len(key) > ids.dtype.itemsize // 4:  # "U" arrays hold 4 bytes per character
        return None
    pos = int(np.searchsorted(ids, key))
    if pos < ids.size and ids[pos] == key:
        return pos
    return None


def find_all_sorted(ids: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """The positions (int32, in `keys` order) of those `keys` that are in a sorted id array: one
    vectorised binary search, the same guard against widening as `find_sorted`."""
    positions = find_each_sorted(ids, keys)
    return positions[positions >= 0]


def find_each_sorted(ids: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """The position (int32) of each of `keys` in a sorted id array, -1 for a key not in it: one
    vectorised binary search, the same guard against widening as `find_sorted`."""
    if len(keys) <= 8:  # a few keys: searching each costs less than building the arrays
        return np.array(
            [-1 if (i := find_sorted(ids, key)) is None else i for key in keys], dtype=np.int32
        )
    found = np.full(len(keys), -1, dtype=np.int32)
    width = ids.dtype.itemsize // 4
    fitting = [n for n, key in enumerate(keys) if len(key) <= width]
    if not fitting or ids.size == 0:
        return found
    wanted = np.asarray([keys[n] for n in fitting], dtype=ids.dtype)
    positions = np.minimum(np.searchsorted(ids, wanted), ids.size - 1)
    hit = ids[positions] == wanted
    found[np.asarray(fitting)[hit]] = positions[hit]
    return found


def id_keys(ids: Sequence[str]) -> np.ndarray:
    """`stable_key` of each id (uint64, in order): how a version names the records it holds."""
    return np.fromiter((stable_key(i) for i in ids), np.uint64, len(ids))


def sorted_id_keys(ids: Iterable[str]) -> np.ndarray:
    """Sorted unique `stable_key`s of ids (uint64): a version's set of held records."""
    return np.unique(np.fromiter((stable_key(i) for i in ids), dtype=np.uint64))


def holds_keys(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of `keys` are in the sorted key set (bool, in order): one binary search."""
    if sorted_keys.size == 0 or keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return np.asarray(sorted_keys[pos] == keys)


def load_model(directory: Path, *, verify_hashes: bool = False) -> LoadedModel:
    """Load a version memory-mapped; ArtifactError when anything is missing, truncated or mistyped
    (`verify_hashes`: or when a file's content differs from the manifest's SHA-256)."""
    manifest = read_manifest(directory)
    check_files(directory, manifest, verify_hashes=verify_hashes)
    loaded = _load_arrays(directory, manifest)
    lists = _load_lists(directory)
    n_items, n_customers = loaded["item_ids"].size, loaded["customer_ids"].size
    if (n_items, n_customers) != (manifest.n_items, manifest.n_customers):
        raise ArtifactError(
            f"version {directory.name}: arrays hold {n_customers} customers / {n_items} items, "
            "manifest says otherwise"
        )
    weighted = loaded.get("purchases_recency_weighted")
    if weighted is not None and weighted.shape != loaded["purchases_items"].shape:
        raise ArtifactError(
            f"version {directory.name}: {weighted.size} recency-weighted purchases for "
            f"{loaded['purchases_items'].size} purchases"
        )
    names = lists["user_feature_names"]
    return LoadedModel(
        manifest=manifest,
        directory=directory,
        arrays=_model_arrays(loaded, manifest),
        item_ids=loaded["item_ids"],
        customer_ids=loaded["customer_ids"],
        item_category=loaded["item_category"],
        item_in_stock=loaded["item_in_stock"],
        item_price=loaded["item_price"],
        item_popularity=loaded["item_popularity"],
        categories=lists["categories"],
        user_feature_names=names,
        user_feature_index={name: n_customers + j for j, name in enumerate(names)},
        candidates=_candidates(loaded, directory, n_customers),
        similar=_similar_lists(loaded, directory, n_items),
        item_repeat_rate=_per_item(loaded, "item_repeat_rate", directory, n_items),
    )


def check_files(directory: Path, manifest: Manifest, *, verify_hashes: bool) -> None:
    """Every file the manifest lists is there with its size (and, verifying, its SHA-256)."""
    for name, entry in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{where(path)}: listed in the manifest but missing")
        if path.stat().st_size != entry.size:
            raise ArtifactError(
                f"{where(path)}: size {path.stat().st_size} differs from the manifest's {entry.size}"
            )
        if verify_hashes and sha256_of(path) != entry.sha256:
            raise ArtifactError(
                f"{where(path)}: content differs from the manifest (SHA-256 mismatch)"
            )


def _load_arrays(directory: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    loaded: dict[str, np.ndarray] = {}
    for stem, (dtype, ndim) in {**ARRAYS, **OPTIONAL_ARRAYS}.items():
        if stem in OPTIONAL_ARRAYS and f"{stem}.npy" not in manifest.files:
            continue
        loaded[stem] = load_array(
            directory / f"{stem}.npy", dtype, ndim, prefault=stem in PREFAULTED
        )
    return loaded


def _load_lists(directory: Path) -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    for name in LISTS:
        path = directory / f"{name}.json"
        try:
            lists[name] = msgspec.json.decode(path.read_bytes(), type=list[str])
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ArtifactError(f"{where(path)}: unreadable list: {reason(exc)}") from None
    return lists


def _model_arrays(loaded: dict[str, np.ndarray], manifest: Manifest) -> ModelArrays:
    return ModelArrays(
        item_vectors=loaded["item_vectors"],
        item_biases=loaded["item_biases"],
        user_feature_vectors=loaded["user_feature_vectors"],
        user_feature_biases=loaded["user_feature_biases"],
        customer_features=loaded["customer_features"],
        purchases=Purchases(
            indptr=loaded["purchases_indptr"],
            items=loaded["purchases_items"],
            counts=loaded["purchases_counts"],
            last_day=loaded["purchases_last_day"],
            recency_weighted=loaded.get("purchases_recency_weighted"),
        ),
        item_reorder_days=loaded["item_reorder_days"],
        identity_weight=manifest.identity_weight,
        has_identity=loaded["customer_has_identity"],
        lightfm_dims=manifest.lightfm_components,
        item_input_vectors=loaded.get("item_input_vectors"),
    )


def _per_item(
    loaded: dict[str, np.ndarray], name: str, directory: Path, n_items: int
) -> np.ndarray | None:
    """An optional per-item array, checked against the catalogue's size."""
    array = loaded.get(name)
    if array is not None and array.size != n_items:
        raise ArtifactError(
            f"version {directory.name}: {name} holds {array.size} of {n_items} items"
        )
    return array


def _candidates(
    loaded: dict[str, np.ndarray], directory: Path, n_customers: int
) -> Candidates | None:
    if "candidate_items" not in loaded or "candidate_scores" not in loaded:
        return None
    items, scores = loaded["candidate_items"], loaded["candidate_scores"]
    if items.shape != scores.shape or items.shape[0] != n_customers:
        raise ArtifactError(
            f"version {directory.name}: candidate lists of shape {items.shape} / {scores.shape} "
            f"do not match {n_customers} customers"
        )
    return Candidates(items=items, scores=scores) if items.shape[1] else None  # zero-width: none


def _similar_lists(
    loaded: dict[str, np.ndarray], directory: Path, n_items: int
) -> SimilarLists | None:
    names = ("similar_items", "similar_scores", "similar_reasons")
    if not all(name in loaded for name in names):
        return None
    items, scores, reasons = (loaded[name] for name in names)
    if not items.shape == scores.shape == reasons.shape or items.shape[0] != n_items:
        raise ArtifactError(
            f"version {directory.name}: similar-product lists of shape {items.shape} / "
            f"{scores.shape} / {reasons.shape} do not match {n_items} items"
        )
    lists = SimilarLists(items=items, scores=scores, reasons=reasons)
    return lists if lists.length else None  # zero-width: none


# numpy parses an .npy header with `ast.literal_eval`, and CPython 3.11's AST constructor is not
# thread-safe: two threads opening versions at once (a worker's loader and a membership sync, say)
# can fail with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905, seen
# in this project's concurrent-sync test). Opening a file is a header parse and an mmap: a lock
# costs nothing measurable.
_NPY_HEADER_LOCK = threading.Lock()


def load_array(path: Path, dtype: str, ndim: int = 1, *, prefault: bool = False) -> np.ndarray:
    """An `.npy` file of a version, memory-mapped; ArtifactError naming the file when it is
    unreadable or not `dtype` ("U": any unicode width) with `ndim` dimensions."""
    try:
        with _NPY_HEADER_LOCK:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{where(path)}: unreadable array: {reason(exc)}") from None
    handle = getattr(array, "_mmap", None)
    if prefault and handle is not None and sys.platform == "linux":
        # Measured on 1M customers: a request's mean time 68 -> 18 us while pages were cold.
        with contextlib.suppress(OSError, ValueError):  # older kernels: faults on first touch
            handle.madvise(_MADV_POPULATE_READ)
    kind_ok = array.dtype.kind == "U" if dtype == "U" else array.dtype == np.dtype(dtype)
    if not kind_ok or array.ndim != ndim:
        raise ArtifactError(
            f"{where(path)}: expected {dtype} with {ndim} dimension(s), found {array.dtype} {array.shape}"
        )
    # A plain ndarray view of the mapping: same shared pages, without np.memmap's per-operation
    # subclass overhead on the request path.
    return np.asarray(array)


def map_bytes(path: Path) -> memoryview:
    """A version's byte file (concatenated records), memory-mapped read-only; ArtifactError naming
    the file when it cannot be read."""
    try:
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                return memoryview(b"")  # mmap refuses an empty file
            return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
    except OSError as exc:
        raise ArtifactError(f"{where(path)}: unreadable: {reason(exc)}") from None


def encode(value: object) -> bytes:
    return _encoder.encode(value)
