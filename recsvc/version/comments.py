"""A version's NPS comments and their themes, row for row with its answer table
(`recsvc.version.responses`; written by `training.publish.responses`).

Files in the version directory:

- `nps_responses_comment.bin`: every distinct comment once (whitespace stripped, UTF-8),
  concatenated in the order of their first answer.
- `nps_responses_comment_offsets.npy` (int64, distinct comments + 1): comment k is
  `bin[offsets[k]:offsets[k + 1]]`.
- `nps_responses_comment_index.npy` (int32, one per answer): the answer's comment k, -1 for none.
  Answers with the same text share one k: a theme's latest *distinct* comments are found by
  comparing integers, and surveys' many repeated "Great!" are stored once.
- `nps_responses_themes.npy` (uint32, one per answer): the themes its comment mentions
  (`recsvc.domain.themes`), as bits: bit k is the k-th name of `ResponseTableFile.themes`. The
  version's list decodes its bits, so a lexicon that gains a theme later does not misread it.

Comments are personal data (`recsvc.domain.privacy.PERSONAL_DATA`, holder `versions`): whatever
reads them for more than one customer leaves out the rows a worker masks (`recsvc.version.erased`).
A version written before comments were kept has none of these files (`ResponseTable.comments` is
None).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from recsvc.errors import ArtifactError
from recsvc.version.artifacts import load_array, map_bytes, where

COMMENT_BIN: Final = "nps_responses_comment.bin"
COMMENT_OFFSETS: Final = "nps_responses_comment_offsets.npy"
COMMENT_INDEX: Final = "nps_responses_comment_index.npy"
COMMENT_THEMES: Final = "nps_responses_themes.npy"
COMMENT_FILES: Final = (COMMENT_BIN, COMMENT_OFFSETS, COMMENT_INDEX, COMMENT_THEMES)
NO_COMMENT: Final = -1
MAX_THEMES: Final = 32  # bits of a uint32


def theme_mask(themes: Iterable[str], names: Sequence[str]) -> int:
    """The bits of `themes` in the order of `names` (a theme not in `names` has no bit)."""
    mask = 0
    for theme in themes:
        if theme in names:
            mask |= 1 << names.index(theme)
    return mask


def mask_themes(mask: int, names: Sequence[str]) -> list[str]:
    """The themes of a bit mask, in the order of `names`."""
    return [name for k, name in enumerate(names) if mask >> k & 1]


@dataclass(frozen=True, slots=True)
class ResponseComments:
    """A version's comments and theme bits, memory-mapped (see the module docstring)."""

    data: memoryview
    offsets: np.ndarray
    index: np.ndarray
    themes: np.ndarray
    theme_names: tuple[str, ...]

    @classmethod
    def open(cls, directory: Path, answers: int, theme_names: Sequence[str]) -> ResponseComments:
        """The comments of a table of `answers` answers; ArtifactError when a file is missing or
        does not match it."""
        if len(theme_names) > MAX_THEMES:
            raise ArtifactError(
                f"version {directory.name}: {len(theme_names)} themes do not fit {COMMENT_THEMES}"
            )
        offsets = load_array(directory / COMMENT_OFFSETS, "int64")
        index = load_array(directory / COMMENT_INDEX, "int32")
        themes = load_array(directory / COMMENT_THEMES, "uint32")
        path = directory / COMMENT_BIN
        if not path.is_file():
            raise ArtifactError(f"{where(path)}: missing")
        data = map_bytes(path)
        distinct = offsets.size - 1
        if (
            distinct < 0
            or index.size != answers
            or themes.size != answers
            or int(offsets[0]) != 0
            or int(offsets[-1]) != len(data)
            or (answers and not NO_COMMENT <= int(index.min()) <= int(index.max()) < distinct)
        ):
            raise ArtifactError(
                f"version {directory.name}: {', '.join(COMMENT_FILES)} do not match its "
                f"{answers} NPS answers"
            )
        return cls(data, offsets, index, themes, tuple(theme_names))

    def text(self, k: int) -> str:
        """Distinct comment `k`."""
        return str(self.data[int(self.offsets[k]) : int(self.offsets[k + 1])], "utf-8")

    def comment(self, row: int) -> str | None:
        """Answer `row`'s comment; None when it has none."""
        k = int(self.index[row])
        return self.text(k) if k != NO_COMMENT else None

    def commented(self) -> np.ndarray:
        """Per answer: has it a comment (bool)."""
        return np.asarray(self.index) != NO_COMMENT

    def themes_at(self, row: int) -> list[str]:
        """Answer `row`'s themes, in the version's theme order."""
        return mask_themes(int(self.themes[row]), self.theme_names)
