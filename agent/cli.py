"""`paper-agent` command line: ingest, search, stats (and the commands later stages add)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from paper_agent.errors import AgentError, ModelServerUnavailable
from paper_agent.service import PaperAgent
from paper_agent.settings import RetrieveSettings, Settings, field_bounds

Command = Callable[[argparse.Namespace, PaperAgent], int]


def cmd_ingest(args: argparse.Namespace, agent: PaperAgent) -> int:
    report, stats = agent.ingest([Path(p) for p in args.paths], progress=not args.quiet)
    shipped = f" ({stats.shipped} from shipped vectors)" if stats.shipped else ""
    print(
        f"files: {report.files}  papers: {stats.papers} (+{report.duplicates} duplicates merged)  "
        f"chunks: {stats.chunks}  embedded: {stats.embedded}{shipped}  removed: {stats.deleted}  "
        f"skipped: {len(report.skipped)}"
    )
    if stats.sentences is not None:
        sentences = stats.sentences
        print(
            f"answer sentences: {sentences.stored}  added: {sentences.shipped + sentences.embedded} "
            f"({sentences.shipped} from shipped vectors)  removed: {sentences.deleted}"
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


def cmd_ask(args: argparse.Namespace, agent: PaperAgent) -> int:
    """Sources as soon as they are found, the model's draft as it streams (stderr), then the verified answer."""
    from paper_agent.embed import use_threads
    from paper_agent.types import Delta, Final, Sources

    use_threads(agent.settings.query_threads, agent.embedder, agent.sentence_embedder)
    from paper_agent.llm_server import ensure_server

    ensure_server(agent.settings)  # the configured server, else reuse the local one or start one (it stays up)
    if args.json:
        print(json.dumps(agent.ask(args.question, top_k=args.k).to_json(), indent=2))
        return 0
    for event in agent.ask_stream(args.question, top_k=args.k):
        if isinstance(event, Sources):
            print("sources:")
            for n, passage in enumerate(event.passages, start=1):
                print(f"  {n}. [{passage.paper_id}] {passage.title}")
            print("draft: ", end="", file=sys.stderr, flush=True)
        elif isinstance(event, Delta):
            print(event.text, end="", file=sys.stderr, flush=True)
        elif isinstance(event, Final):
            answer = event.answer
            print(file=sys.stderr)
            print(f"\nanswer: {answer.text}")
            for c in answer.citations:
                print(f'  [{c.number}] {c.paper_id} {c.title}\n      "{c.quote}"  (support {c.support:.2f})')
            if answer.closest:
                print("closest in the collection (not citations):")
                for paper in answer.closest:
                    print(f"  - [{paper.paper_id}] {paper.title}")
            timings = "  ".join(f"{k} {v:.0f}" for k, v in answer.timings.items())
            print(f"({answer.verification.get('outcome')}; answerability {answer.answerability:.2f}; ms: {timings})")
    return 0


def cmd_eval(args: argparse.Namespace, agent: PaperAgent) -> int:
    from paper_agent.eval.dataset import DEFAULT_QUESTIONS, load_questions
    from paper_agent.eval.report import headline
    from paper_agent.eval.run import run_for_mode

    questions = load_questions(args.questions or DEFAULT_QUESTIONS, args.limit)
    summaries = run_for_mode(
        agent, questions, args.out, args.mode, retrieval_only=args.retrieval_only, progress=not args.quiet
    )
    for mode, summary in summaries.items():
        print(f"{mode}: {headline(summary)}")
    print(f"report: {args.out / 'comparison.md' if len(summaries) > 1 else args.out / 'report.md'}")
    failed = sum(s["run"]["answer_errors"] for s in summaries.values())
    if failed:
        print(f"paper-agent: {failed} questions got no answer (errors in the report)", file=sys.stderr)
    return 1 if failed else 0


def cmd_calibrate(args: argparse.Namespace, agent: PaperAgent) -> int:
    """Fit the answerability model on the development set and write it (the package loads agent/answerability.json)."""
    from paper_agent.decide import CALIBRATION
    from paper_agent.eval.calibrate import calibrate, collect, write_calibration
    from paper_agent.eval.dataset import DEV_QUESTIONS, load_questions

    path = args.questions or DEV_QUESTIONS
    rows = collect(agent, load_questions(path), progress=not args.quiet)
    calibration, report = calibrate(rows)
    out = args.out or Path(__file__).with_name(CALIBRATION)
    write_calibration(calibration, report, path, out)
    print(json.dumps(report, indent=2))
    print(f"wrote {out}")
    against = [f for f, c in report["coefficients"].items() if c["agrees_with_direction"] is False]
    if against:
        print(
            f"paper-agent: warning: coefficients against their signal's meaning: {', '.join(against)}", file=sys.stderr
        )
    return 0


def cmd_eval_diff(args: argparse.Namespace, agent: PaperAgent) -> int:
    from paper_agent.eval.diff import diff_summaries, format_diff, load_summary

    rows = diff_summaries(load_summary(args.run_a), load_summary(args.run_b))
    print(format_diff(rows, str(args.run_a), str(args.run_b)))
    return 0


def cmd_serve(args: argparse.Namespace, agent: PaperAgent) -> int:
    """Set up whatever is missing (index, model server), then serve the web app until Ctrl-C."""
    from paper_agent.embed import use_threads
    from paper_agent.llm_supervisor import supervise
    from paper_agent.query_embed import BatchingEmbedder, CachingEmbedder, QueryCache
    from paper_agent.web.server import run

    settings = agent.settings
    # Searches embed one short query each: batched, one batch at a time on two threads by default (set below,
    # after any ingest), which sleep between runs rather than spin against the model server. Measured at 16 clients
    # against two batches on one thread each: p95 ~810 vs ~1,110 ms, 5% fewer requests/s, and a lone question
    # embedded in 38 instead of 67 ms. A repeated query skips the queue altogether. Ingest's multi-text calls pass
    # straight through.
    searcher = agent.embedder
    cache = QueryCache(settings.serve.query_cache)
    batching = BatchingEmbedder(searcher, workers=settings.query_workers)
    agent = PaperAgent(settings, embedder=CachingEmbedder(batching, cache))
    if agent.index.stats()["chunks"] == 0:
        print(f"the index at {settings.data_dir} is empty: ingesting the bundled corpus", flush=True)
        cmd_ingest(argparse.Namespace(paths=[], quiet=False), agent)
    elif (built_with := agent.index.built_with) != agent.embedder.name:
        print(f"the index was embedded with {built_with}: re-embedding it with {agent.embedder.name}", flush=True)
        agent.index.reembed(agent.embedder)
    sentences = agent.sync_sentences()
    if sentences.shipped or sentences.embedded or sentences.deleted:
        print(f"answer sentences' vectors brought in line with the index: {sentences}", flush=True)
    error = _ready_model_server(settings)
    use_threads(settings.query_threads, searcher, agent.sentence_embedder)
    agent.warm_up()  # loads the models and any lexical index now, not during the first request
    supervisor = supervise(settings, error)  # None for a configured URL: that server is only reported
    run(agent, args.host or settings.serve.host, args.port or settings.serve.port, cache, supervisor)
    return 0


def _ready_model_server(settings: Settings) -> str | None:
    """Check the configured model server, or find or start the local one; warn (not fail) when there is none,
    and return why."""
    from paper_agent.llm_server import answers, ensure_server

    configured = settings.llm.base_url is not None
    print("model server: " + ("checking the configured one" if configured else "finding or starting one"), flush=True)
    try:
        url = ensure_server(settings)
        if configured and not answers(url, settings.llm):
            raise ModelServerUnavailable(url, "does not answer a chat request")
        print(f"model server: {url}", flush=True)
    except ModelServerUnavailable as error:
        # Serve anyway: search and the paper pages work, and questions answer 503 with this reason.
        print(f"paper-agent: warning: {error}; questions answer 503 until it is up", file=sys.stderr)
        return error.reason
    return None


def cmd_llm(args: argparse.Namespace, agent: PaperAgent) -> int:
    """Start the default local model server, wait until it answers, and serve until Ctrl-C."""
    from paper_agent.llm_server import main_llm

    main_llm(agent.settings)
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {n}")
    return n


def _top_k(value: str) -> int:
    """`-k`, held to `retrieve.top_k`'s bounds (the HTTP API's too), so no front end allows more."""
    k = int(value)
    low, high = field_bounds(RetrieveSettings, "top_k")
    if not low <= k <= high:
        raise argparse.ArgumentTypeError(f"-k must be between {low} and {high}, got {k}")
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

    p = sub.add_parser("ask", help="answer a question with cited papers (starts the local model server if needed)")
    p.add_argument("question")
    p.add_argument("-k", type=_top_k, default=None, help="papers shown to the model (default: answer.max_passages)")
    p.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    p.set_defaults(run=cmd_ask)

    p = sub.add_parser("llm", help="start the local model server (llama.cpp, or vLLM on a GPU host) and wait")
    p.set_defaults(run=cmd_llm)

    p = sub.add_parser("eval", help="evaluate retrieval and answers on a question set; write results and a report")
    p.add_argument("--questions", type=Path, default=None, help="JSONL question file (default: the public set)")
    p.add_argument("--out", type=Path, required=True, help="folder for results.jsonl, summary.json, report.md/html")
    p.add_argument("--retrieval-only", action="store_true", help="search only: no answers, no judge")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N questions")
    p.add_argument(
        "--mode",
        choices=["dense", "lexical", "hybrid", "all"],
        default=None,
        help="retrieval mode for this run (default: retrieve.mode); all = one run per mode plus a comparison",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("calibrate", help="fit the answerability decision on the development set")
    p.add_argument("--questions", type=Path, default=None, help="JSONL question file (default: the development set)")
    p.add_argument("--out", type=Path, default=None, help="where to write it (default: the package's own file)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_calibrate)

    p = sub.add_parser("eval-diff", help="compare two evaluation runs metric by metric")
    p.add_argument("run_a", type=Path, help="run folder (or its summary.json)")
    p.add_argument("run_b", type=Path, help="run folder (or its summary.json)")
    p.set_defaults(run=cmd_eval_diff)

    p = sub.add_parser("serve", help="the web app: chat UI, HTTP API, OpenAI-compatible /v1 (sets up what is missing)")
    p.add_argument("--host", default=None, help="interface to bind (default: serve.host)")
    p.add_argument("--port", type=int, default=None, help="port to bind (default: serve.port)")
    p.set_defaults(run=cmd_serve)
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
