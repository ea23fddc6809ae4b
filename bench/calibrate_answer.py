"""Where the answer stage's thresholds come from: measured on a question set, no model server needed.

    PAPER_AGENT_DATA_DIR=/tmp/my-index .venv/bin/python bench/calibrate_answer.py [--questions FILE]

- `answer.min_support`: each reference-answer sentence is scored by the verifier against its gold paper
  (supported) and against the best-ranked paper that is not gold (unsupported); the threshold with the best
  balanced accuracy (Youden's J) is printed.
- `answer.min_relevance` (refuse without asking the model): the relevance the answerer computes (best cosine of
  the question to a shown title or sentence) for answerable vs unanswerable questions. Refusing here cannot be
  undone by a good reply, so the threshold is the highest that refuses no answerable question, less a margin.
- `answer.min_evidence` (quote sources when the model's reply fails): the same relevance; the J-optimal threshold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import agent  # noqa: F401  (offline environment first)
from agent.answer import prepare_sources
from agent.service import PaperAgent
from agent.settings import PROJECT_ROOT
from agent.verify import split_sentences, support

PUBLIC = PROJECT_ROOT / "eval" / "datasets" / "public.jsonl"
MARGIN = 0.01


def youden(positives: list[float], negatives: list[float]) -> tuple[float, float]:
    """(J, threshold) maximising TPR - FPR over the observed values as candidate thresholds."""
    best = (-1.0, 0.0)
    for t in sorted(set(positives) | set(negatives)):
        tpr = sum(p >= t for p in positives) / len(positives)
        fpr = sum(n >= t for n in negatives) / len(negatives)
        best = max(best, (tpr - fpr, t))
    return best


def support_pairs(agent_: PaperAgent, questions: list[dict]) -> tuple[list[float], list[float]]:
    """Verifier scores of reference-answer sentences against gold papers and against the best non-gold one."""
    positives, negatives = [], []
    for q in questions:
        if not q["gold_ids"]:
            continue
        other = next(h for h in agent_.search(q["question"], 10) if h.paper_id not in q["gold_ids"])
        golds = [agent_.index.get_paper(g) for g in q["gold_ids"]]
        wrong = agent_.index.get_paper(other.paper_id)
        for sentence in split_sentences(q["reference_answer"]):
            positives.append(max(support(sentence, g.title, g.text).score for g in golds if g))
            negatives.append(support(sentence, wrong.title, wrong.text).score if wrong else 0.0)
    return positives, negatives


def relevances(agent_: PaperAgent, questions: list[dict]) -> dict[str, tuple[bool, float]]:
    """Question id -> (answerable, relevance of the passages the answerer would show)."""
    settings = agent_.settings.answer
    out = {}
    for q in questions:
        hits = agent_.search(q["question"], settings.max_passages)
        sources = prepare_sources(q["question"], [h.passages[0] for h in hits], agent_.sentence_embedder, 10_000)
        out[q["id"]] = (bool(q["gold_ids"]), max((s.relevance for s in sources), default=0.0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, default=PUBLIC)
    args = parser.parse_args()
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    agent_ = PaperAgent()

    pos, neg = support_pairs(agent_, questions)
    j, t = youden(pos, neg)
    tpr, fpr = sum(p >= t for p in pos) / len(pos), sum(n >= t for n in neg) / len(neg)
    print(f"min_support: J={j:.3f} at {t:.3f} (TPR {tpr:.2f}, FPR {fpr:.2f}; {len(pos)} sentence pairs)")

    rel = relevances(agent_, questions)
    answerable = [r for ok, r in rel.values() if ok]
    unanswerable = [r for ok, r in rel.values() if not ok]
    floor = min(answerable) - MARGIN
    refused = sum(r < floor for r in unanswerable)
    print(
        f"min_relevance: {floor:.3f} (lowest answerable {min(answerable):.3f} - {MARGIN}); "
        f"refuses {refused}/{len(unanswerable)} unanswerable before generation"
    )
    j, t = youden(answerable, unanswerable)
    tpr, fpr = sum(a >= t for a in answerable) / len(answerable), sum(u >= t for u in unanswerable) / len(unanswerable)
    print(f"min_evidence: J={j:.3f} at {t:.3f} (answerable kept {tpr:.2f}, unanswerable passed {fpr:.2f})")
    for qid, (ok, r) in sorted(rel.items(), key=lambda kv: kv[1][1]):
        print(f"  {qid} {'answerable  ' if ok else 'unanswerable'} {r:.3f}")


if __name__ == "__main__":
    main()
