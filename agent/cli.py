"""`paper-agent` command line: ingest, search, stats (and the commands later stages add)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from agent.errors import AgentError
from agent.service import PaperAgent

Command = Callable[[argparse.Namespace, PaperAgent], int]


def cmd_ingest(args: argparse.Namespace, agent: PaperAgent) -> int:
    report, stats = agent.ingest([Path(p) for p in args.paths], progress=not args.quiet)
    print(
        f"files: {report.files}  papers: {stats.papers} (+{report.duplicates} duplicates merged)  "
        f"chunks: {stats.chunks}  embedded: {stats.embedded}  removed: {stats.deleted}  "
        f"skipped: {len(report.skipped)}"
    )
    for problem in report.skipped:
        print(f"  skipped {problem}", file=sys.stderr)
    return 0 if report.papers or not report.skipped else 1


def cmd_search(args: argparse.Namespace, agent: PaperAgent) -> int:
    hits = agent.search(args.query, args.k)
    if args.json:
        print(json.dumps([h.to_json() for h in hits], indent=2))
        return 0
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>2}. [{hit.paper_id}] {hit.title}  ({hit.score:.3f})")
    return 0


def cmd_stats(args: argparse.Namespace, agent: PaperAgent) -> int:
    stats = agent.index.stats()
    print(json.dumps(stats) if args.json else f"papers: {stats['papers']}  chunks: {stats['chunks']}")
    return 0


def _top_k(value: str) -> int:
    k = int(value)
    if not 1 <= k <= 100:
        raise argparse.ArgumentTypeError(f"-k must be between 1 and 100, got {k}")
    return k


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paper-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="read papers into the index (no path = the bundled corpus)")
    p.add_argument("paths", nargs="*", help="files or folders: .txt listing pages, .json/.jsonl, .pdf")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_ingest)

    p = sub.add_parser("search", help="rank papers for a query")
    p.add_argument("query")
    p.add_argument("-k", type=_top_k, default=None, help="papers to return (default: retrieve.top_k)")
    p.add_argument("--json", action="store_true", help="print a JSON list, best first")
    p.set_defaults(run=cmd_search)

    p = sub.add_parser("stats", help="papers and chunks in the index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        return run(args, PaperAgent())
    except AgentError as err:
        print(f"paper-agent: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
