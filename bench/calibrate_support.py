"""Where `answer.min_support` comes from: measured on a question set, no model server needed.

    PAPER_AGENT_DATA_DIR=/tmp/my-index .venv/bin/python bench/calibrate_support.py [--questions FILE]

Each reference-answer sentence is scored by the verifier against its gold paper (supported) and against the
best-ranked paper that is not gold (unsupported); the threshold with the best balanced accuracy (Youden's J) is
printed. (Whether to answer at all is the answerability decision's: `paper-agent calibrate`.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paper_agent import offline  # noqa: F401  (offline environment first)
from paper_agent.eval.dataset import DEFAULT_QUESTIONS
from paper_agent.service import PaperAgent
from paper_agent.verify import split_sentences, support

PUBLIC = DEFAULT_QUESTIONS


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


if __name__ == "__main__":
    main()
