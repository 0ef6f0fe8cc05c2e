"""Each customer's best never-bought items, computed when a version is written.

The service answers a recommendation request for a customer whose features are as stored with a
lookup in this list (`recsvc.service.recommend`), instead of scoring the whole catalogue per request. The
list is exactly the model's ranking (`recsvc.version.scoring.batch_top_k`, the order the service uses), so
serving from it changes speed, not results.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from recsvc.version.artifacts import MANIFEST, file_entries, load_model, read_manifest
from recsvc.version.scoring import Candidates, ModelArrays, batch_top_k
from training.progress import Progress

# Customers scored per matrix product: the (block x items) float32 scores stay in cache-sized
# pieces (128 x 50k items = 25 MB). Measured on 1M x 50k: 128 beat 64 and 256; one Python thread
# (BLAS already uses every core in the product) was within 15% of the best thread mix.
BLOCK = 128


def serving_candidates(model: ModelArrays, n: int, *, show_progress: bool = True) -> Candidates:
    """The best `n` never-bought items of every customer in the model."""
    customers = model.n_customers
    items = np.full((customers, n), -1, dtype=np.int32)
    scores = np.full((customers, n), -np.inf, dtype=np.float32)
    progress = Progress("candidates", total=customers, unit="customers", enabled=show_progress)

    for start in range(0, customers, BLOCK):
        block = np.arange(start, min(start + BLOCK, customers))
        best, best_scores = batch_top_k(model, block, n)
        items[block, : best.shape[1]] = best
        scores[block, : best.shape[1]] = best_scores
        progress.advance(block.size)
    progress.finish()
    return Candidates(items=items, scores=scores)


def candidate_arrays(lists: Candidates) -> dict[str, np.ndarray]:
    """The lists as the artifact's arrays (see `recsvc.version.artifacts.OPTIONAL_ARRAYS`)."""
    return {"candidate_items": lists.items, "candidate_scores": lists.scores}


def add_to_artifact(directory: Path, n: int, *, show_progress: bool = True) -> bool:
    """Give an artifact written without candidate lists its lists, computed from its own arrays,
    and list them in its manifest; False when it has them already."""
    manifest = read_manifest(directory)
    if "candidate_items.npy" in manifest.files:
        return False
    lists = serving_candidates(load_model(directory).arrays, n, show_progress=show_progress)
    for name, array in candidate_arrays(lists).items():
        np.save(directory / f"{name}.npy", array, allow_pickle=False)
    manifest = msgspec.structs.replace(manifest, files=file_entries(directory))
    (directory / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    return True
