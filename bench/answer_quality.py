"""`ask` over a question set: share citing a gold paper, unanswerable refused, model sentences supported.

    PAPER_AGENT_DATA_DIR=/tmp/my-index PAPER_AGENT_LLM__BASE_URL=http://127.0.0.1:8090/v1 \\
        .venv/bin/python bench/answer_quality.py [--questions FILE] [--limit N] [--ids q001,q052] [--out results.jsonl]

Needs a running model server (`paper-agent llm`, or the URL above). Figures, over the questions run:
- answerable citing gold: share of questions with gold papers whose answer cites at least one of them;
- unanswerable refused: share of questions without gold papers that got the fixed refusal;
- model sentences supported: share of the model's reply sentences the verifier kept. (Every sentence of a final
  answer is supported by construction: unsupported ones are dropped, and fallback quotes are source sentences.)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.embed import use_threads
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.service import PaperAgent

PUBLIC = DEFAULT_QUESTIONS


def run(agent_: PaperAgent, questions: list[dict], out: Path | None) -> dict[str, float]:
    """Ask every question; print one line each and return the summary figures."""
    rows = []
    for q in questions:
        answer = agent_.ask(q["question"])
        cited = [c.paper_id for c in answer.citations]
        v = answer.verification
        row = {
            "id": q["id"],
            "type": q.get("type", ""),
            "gold": q.get("gold_ids", []),
            "cited": cited,
            "gold_cited": bool(set(cited) & set(q.get("gold_ids", []))),
            "refused": answer.refused,
            "outcome": v.get("outcome"),
            "model_sentences": v.get("sentences", 0),
            "model_supported": v.get("supported", 0),
            "answer": answer.text,
            "timings": answer.timings,
            "checked": v.get("checked", []),
        }
        rows.append(row)
        mark = "refused" if answer.refused else f"cites {'GOLD' if row['gold_cited'] else 'other'}"
        print(f"{q['id']} {row['type']:<12} {row['outcome']:<10} {mark:<11} {answer.text[:110]!r}", flush=True)
    if out is not None:
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return summarise(rows)


def summarise(rows: list[dict]) -> dict[str, object]:
    answerable = [r for r in rows if r["gold"]]
    unanswerable = [r for r in rows if not r["gold"]]
    ttft = [r["timings"]["ttft_ms"] for r in rows if "ttft_ms" in r["timings"]]
    return {
        "questions": len(rows),
        "answerable_citing_gold": _share(sum(r["gold_cited"] for r in answerable), len(answerable)),
        "answerable_refused": _share(sum(r["refused"] for r in answerable), len(answerable)),
        "unanswerable_refused": _share(sum(r["refused"] for r in unanswerable), len(unanswerable)),
        "model_sentences_supported": _share(
            sum(r["model_supported"] for r in rows), sum(r["model_sentences"] for r in rows)
        ),
        "outcomes": {o: sum(r["outcome"] == o for r in rows) for o in ("model", "extractive", "refused")},
        "median_ttft_ms": statistics.median(ttft) if ttft else None,
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=PUBLIC)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--ids", default=None, help="comma-separated question ids to run")
    parser.add_argument("--out", type=Path, default=None, help="write one JSON line per question here")
    args = parser.parse_args()
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    if args.ids:
        wanted = set(args.ids.split(","))
        questions = [q for q in questions if q["id"] in wanted]
    agent_ = PaperAgent()
    use_threads(agent_.settings.query_threads, agent_.embedder, agent_.sentence_embedder)  # as `serve` does
    summary = run(agent_, questions[: args.limit], args.out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
