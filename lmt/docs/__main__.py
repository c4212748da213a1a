"""``python -m lmt.docs [--check]``: rewrite the generated blocks of the config schema and the
README from the parameter declarations (``--check``: only report stale files, exit 1 if any)."""

from __future__ import annotations

import argparse
import sys

from lmt.docs import REPO, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmt.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    paths = stale() if args.check else write()
    verb = "stale" if args.check else "rewrote"
    for path in paths:
        print(f"{verb}: {path.relative_to(REPO)}")
    if args.check and paths:
        print("run `python -m lmt.docs` to rewrite the generated blocks", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
