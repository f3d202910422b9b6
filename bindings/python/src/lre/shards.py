"""Command line of `lre.core.gather_state` / `split_state`: checkpoints across rank counts.

    python -m lre.shards gather OUT SHARD [SHARD ...]      # P shard files -> one unsharded file
    python -m lre.shards split IN OUT [OUT ...] [--rows N,N,...]   # one file -> Q shard files

`split` writes one shard per OUT (rows as even as possible unless --rows gives each count); rank
q then resumes from the q-th file with `lre_optimizer_from_state` (or `load_file`) and registers
its all-reduce. Files are written whole or not at all (a temporary file, then a rename).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .core import LREError, gather_state, split_state


def _write(path: str, data: bytes) -> None:
    temporary = Path(f"{path}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lre.shards",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("gather", help="P shard state files -> one unsharded file")
    gather.add_argument("output")
    gather.add_argument("shards", nargs="+")
    split = commands.add_parser("split", help="one unsharded state file -> Q shard files")
    split.add_argument("input")
    split.add_argument("outputs", nargs="+")
    split.add_argument("--rows", help="comma-separated row count of each shard (default: even)")
    args = parser.parse_args(argv)
    try:
        if args.command == "gather":
            _write(args.output, gather_state([Path(p).read_bytes() for p in args.shards]))
            print(f"{args.output}: gathered {len(args.shards)} shards")
        else:
            rows = ([int(r) for r in args.rows.split(",")] if args.rows else len(args.outputs))
            if args.rows and len(rows) != len(args.outputs):
                parser.error(f"--rows gives {len(rows)} counts for {len(args.outputs)} outputs")
            for path, blob in zip(args.outputs, split_state(Path(args.input).read_bytes(), rows)):
                _write(path, blob)
            print(f"{args.input}: split into {len(args.outputs)} shards")
    except (LREError, OSError, ValueError) as e:
        print(f"python -m lre.shards: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
