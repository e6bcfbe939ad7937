"""Rebuild the 20 Newsgroups demo data set in `examples/data/20ng/` from the converted full splits.

    python examples/data/make_demo_data.py --source ../shared/data/20ng

The source folder holds the whole converted corpus (train.jsonl 10,183 / dev.jsonl 1,131 / test.jsonl 7,532
documents and 20ng.taxonomy; see examples/data/20ng/README.md). Every split is a seeded random sample of its
source split, written in the source's order, texts cut at `--max_chars` characters, gzip-compressed with a
fixed timestamp so that a rebuild gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
from pathlib import Path

SIZES = {"train": 3000, "dev": 500, "test": 2000}


def sample_split(source: Path, target: Path, size: int, seed: int, max_chars: int) -> int:
    """Write a seeded sample of ``size`` documents of ``source`` (JSON lines) to ``target`` (.jsonl.gz)."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    if size > len(lines):
        raise ValueError(f"{source} has {len(lines)} documents; {size} were asked for.")
    rows = sorted(random.Random(seed).sample(range(len(lines)), size))
    out = []
    for row in rows:
        record = json.loads(line := lines[row])
        if not isinstance(record.get("text"), str) or not isinstance(record.get("labels"), list):
            raise ValueError(f"{source}:{row + 1}: expected 'text' (a string) and 'labels' (a list): {line[:80]!r}")
        out.append(json.dumps({"text": record["text"][:max_chars], "labels": record["labels"]}, ensure_ascii=False))
    with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write(("\n".join(out) + "\n").encode("utf-8"))
    return len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="Folder with {train,dev,test}.jsonl, 20ng.taxonomy.")
    parser.add_argument("--output_dir", type=Path, default=Path(__file__).resolve().parent / "20ng")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_chars", type=int, default=2000)
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for split, size in SIZES.items():
        written = sample_split(args.source / f"{split}.jsonl", args.output_dir / f"{split}.jsonl.gz", size,
                               args.seed, args.max_chars)  # fmt: skip
        print(f"{split}: {written} documents")
    shutil.copyfile(args.source / "20ng.taxonomy", args.output_dir / "20ng.taxonomy")


if __name__ == "__main__":
    main()
