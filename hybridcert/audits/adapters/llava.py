"""LLaVA-1.5 guards: the ``llava`` family of the vision-language guard adapter (``guard``, ``families``).

Kept as a module so that ``type = "llava"`` configurations and imports keep working; the shared code (prompt
splicing, read-out, batching) lives in ``guard`` and the LLaVA-1.5 preprocessing in ``families.LlavaFamily``.
The guarantee is the one stated in ``guard`` (docs/theory.md §1, §7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridcert.audits.adapters.families import LlavaFamily
from hybridcert.audits.adapters.guard import (
    DEFAULT_ANSWER_PREFIX,
    DEFAULT_POLICY,
    GuardFilter,
    directory_sha256,
    load_guard,
    spelling_ids,
)

__all__ = ["DEFAULT_ANSWER_PREFIX", "DEFAULT_POLICY", "LlavaGuardFilter", "directory_sha256", "spelling_ids"]


class LlavaGuardFilter(LlavaFamily):
    """A LLaVA-1.5 guard; ``load`` reads any supported family from a local directory (``guard.load_guard``)."""

    @classmethod
    def load(cls, path: Path, **options: Any) -> GuardFilter:
        return load_guard(Path(path), **{"name": f"llava:{Path(path).name}", **options})
