"""Job arrays: `--shard K/N` keeps the K-th of N disjoint parts of the expanded input list.

A file's part depends only on its own name as the outputs mirror it (its path below the folder it
was found in), hashed: the same on every machine and in every order the inputs are listed, whatever
else the list holds and wherever the tree is mounted. N machines with the same inputs and K = 1..N
cover every file exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import ShardError
from .inputs import InputFile

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")



@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, item: InputFile) -> bool:
        return shard_of(item, self.count) == self.index


def parse_shard(spec: str) -> Shard:
    found = _SPEC.fullmatch(spec)
    if not found or not 1 <= int(found.group(1)) <= int(found.group(2)):
        raise ShardError(f"--shard {spec!r}: need K/N with 1 <= K <= N, like 1/4")
    return Shard(int(found.group(1)), int(found.group(2)))


def shard_of(item: InputFile, count: int) -> int:
    """The part (1..count) a file belongs to: a hash of its mirrored name, so stable across machines."""
    key = (item.stem.parent / item.path.name).as_posix()
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def in_shard(items: list[InputFile], shard: Shard | None) -> list[InputFile]:
    """The inputs of this shard, in their order (all of them without --shard)."""
    return items if shard is None else [item for item in items if shard.holds(item)]
