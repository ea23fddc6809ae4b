"""Known-answer tests of the evaluation harness's pure parts: metrics, question files, summaries, diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_agent.eval.dataset import DEFAULT_QUESTIONS, BadQuestionFile, load_questions, parse_question
from paper_agent.eval.diff import diff_summaries, format_diff
from paper_agent.eval.metrics import (
    citation_scores,
    cited_numbers,
    hit_at,
    percentile,
    recall_at,
    reciprocal_rank,
    retrieval_scores,
    split_sentences,
    strip_markers,
)
from paper_agent.eval.record import Record
from paper_agent.eval.summary import summarize

# --- retrieval -----------------------------------------------------------------------------------------------


def test_hit_at_k() -> None:
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert hit_at(ranked, ["a"], 1) == 1.0
    assert hit_at(ranked, ["b"], 1) == 0.0
    assert hit_at(ranked, ["e"], 5) == 1.0
    assert hit_at(ranked, ["f"], 5) == 0.0
    assert hit_at([], ["a"], 5) == 0.0


def test_reciprocal_rank_stops_at_k() -> None:
    ranked = [str(i) for i in range(1, 13)]
    assert reciprocal_rank(ranked, ["1"]) == 1.0
    assert reciprocal_rank(ranked, ["4"]) == 0.25
    assert reciprocal_rank(ranked, ["10"]) == 0.1
    assert reciprocal_rank(ranked, ["11"]) == 0.0  # rank 11 is outside MRR@10
    assert reciprocal_rank(ranked, ["3", "2"]) == 0.5  # the first gold found counts


def test_recall_at_k() -> None:
    ranked = ["a", "x", "y", "b"]
    assert recall_at(ranked, ["a", "b"], 10) == 1.0
    assert recall_at(ranked, ["a", "b"], 3) == 0.5
    assert recall_at(ranked, ["c", "d"], 10) == 0.0
    with pytest.raises(ValueError):
        recall_at(ranked, [], 10)


def test_retrieval_scores_by_number_of_golds() -> None:
    assert retrieval_scores(["x", "g"], ["g"]) == {"hit@1": 0.0, "hit@5": 1.0, "mrr@10": 0.5}
    assert retrieval_scores(["g1", "x"], ["g1", "g2"]) == {"recall@10": 0.5}
    assert retrieval_scores(["x"], []) == {}


def test_percentile_interpolates_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 90) == pytest.approx(37.0)
    assert percentile([5.0], 95) == 5.0


# --- citations -------------------------------------------------------------------------------------------------


def test_split_sentences_keeps_trailing_markers() -> None:
    text = "BLIP-2 beats Flamingo [1]. It uses 54x fewer parameters. [2] ZipLM is 60% smaller [1, 3]."
    assert split_sentences(text) == [
        "BLIP-2 beats Flamingo [1].",
        "It uses 54x fewer parameters. [2]",
        "ZipLM is 60% smaller [1, 3].",
    ]
    assert split_sentences("It is 60% smaller. [1]") == ["It is 60% smaller. [1]"]
    assert split_sentences("One claim. 2D embeddings help.") == ["One claim.", "2D embeddings help."]
    assert split_sentences("") == []
    assert split_sentences("Accuracy rose to 76.87% on STL10.") == ["Accuracy rose to 76.87% on STL10."]


def test_split_sentences_ends_quoted_sentences_with_their_markers() -> None:
    text = 'Title: "First one." [1] "Second one." [1] Other: "Third." [2]'
    assert split_sentences(text) == ['Title: "First one." [1]', '"Second one." [1]', 'Other: "Third." [2]']


def test_cited_numbers() -> None:
    assert cited_numbers("a [2] b [1, 3][2] c") == [2, 1, 3]
    assert cited_numbers("no citations") == []


def _word_overlap(premise: str, hypothesis: str) -> bool:
    """A stand-in entailment for known answers: most of the hypothesis's words are in the premise."""
    words = {w.strip(".,").lower() for w in hypothesis.split() if len(w) > 3}
    return len({w for w in words if w in premise.lower()}) >= 0.6 * len(words)


SOURCES = {
    1: "BLIP-2 outperforms Flamingo80B by 8.7% on zero-shot VQAv2.",
    2: "BLIP-2 uses 54x fewer trainable parameters than Flamingo80B.",
    3: "Bananas are yellow fruit grown in the tropics.",
}


def test_citation_recall_and_precision_known_answers() -> None:
    # supported, one needed citation: recall 1, precision 1
    one = citation_scores("BLIP-2 outperforms Flamingo80B by 8.7% on zero-shot VQAv2 [1].", SOURCES, _word_overlap)
    assert (one.recall, one.precision, one.citations) == (1.0, 1.0, 1)

    # supported jointly by [1] and [2]; [3] is redundant: precision 2/3
    text = "BLIP-2 outperforms Flamingo80B on zero-shot VQAv2 with 54x fewer trainable parameters [1][2][3]."
    joint = citation_scores(text, SOURCES, lambda p, h: all(w in p for w in ("8.7%", "54x")) or "VQAv2 with 54x" in p)
    assert joint.recall == 1.0
    assert joint.precision == pytest.approx(2 / 3)

    # one supported sentence, one with the wrong source, one uncited: recall 1/3, precision 1/2
    text = "BLIP-2 outperforms Flamingo80B on zero-shot VQAv2 [1]. Bananas beat Flamingo80B at VQAv2 [2]. It is good."
    mixed = citation_scores(text, SOURCES, _word_overlap)
    assert mixed.recall == pytest.approx(1 / 3)
    assert mixed.precision == pytest.approx(1 / 2)
    assert mixed.sentences == 3


def test_citation_scores_without_citations_or_unknown_numbers() -> None:
    plain = citation_scores("BLIP-2 is a model.", SOURCES, _word_overlap)
    assert (plain.recall, plain.precision) == (0.0, None)
    unknown = citation_scores("BLIP-2 outperforms Flamingo80B [9].", SOURCES, _word_overlap)
    assert (unknown.recall, unknown.precision) == (0.0, None)  # [9] was not among the answer's citations


# --- question files -----------------------------------------------------------------------------------------------


def test_public_set_loads() -> None:
    questions = load_questions(DEFAULT_QUESTIONS)
    assert len(questions) == 60
    assert {q.type for q in questions} == {"lookup", "detail", "multi", "unanswerable"}
    assert all(q.answerable == (q.type != "unanswerable") for q in questions)
    assert len(load_questions(DEFAULT_QUESTIONS, limit=5)) == 5


def test_type_is_inferred_when_missing() -> None:
    assert parse_question('{"id": "a", "question": "q?", "gold_ids": []}').type == "unanswerable"
    assert parse_question('{"id": "a", "question": "q?", "gold_ids": ["p1"]}').type == "lookup"
    assert parse_question('{"id": "a", "question": "q?", "gold_ids": ["p1", "p2"]}').type == "multi"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"question": "q?", "gold_ids": []}', "id"),
        ('{"id": "a", "question": "", "gold_ids": []}', "question"),
        ('{"id": "a", "question": "q?"}', "gold_ids"),
        ('{"id": "a", "question": "q?", "gold_ids": "p1"}', "gold_ids"),
        ('{"id": "a", "question": "q?", "gold_ids": [], "type": "trivia"}', "type"),
        ('{"id": "a", "question": "q?", "gold_ids": ["p1"], "type": "unanswerable"}', "unanswerable"),
    ],
)
def test_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "ok", "question": "fine?", "gold_ids": ["p1"]}\n\n' + line + "\n")
    with pytest.raises(BadQuestionFile) as info:
        load_questions(path)
    assert info.value.line == 3
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_duplicate_ids_and_empty_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "q?", "gold_ids": []}\n' * 2)
    with pytest.raises(BadQuestionFile, match="duplicate id"):
        load_questions(path)
    path.write_text("\n")
    with pytest.raises(BadQuestionFile, match="no questions"):
        load_questions(path)
    with pytest.raises(BadQuestionFile, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")


# --- summaries and diffs ---------------------------------------------------------------------------------------------


def _record(qid: str, qtype: str, gold: list[str], **fields: object) -> Record:
    return Record(id=qid, type=qtype, question="q?", gold_ids=gold, mode="dense", **fields)  # type: ignore[arg-type]


def test_summary_counts_values_and_failures_apart() -> None:
    records = [
        _record("1", "lookup", ["g"], scores={"hit@1": 1.0, "ragas.faithfulness": 0.8}, timings={"retrieval_ms": 10.0}),
        _record("2", "detail", ["g"], scores={"hit@1": 0.0}, failures={"ragas.faithfulness": "timeout"}),
        _record("3", "unanswerable", [], scores={"refusal_rate_unanswerable": 1.0}, timings={"retrieval_ms": 30.0}),
    ]
    summary = summarize(records, {}, judged=["ragas.faithfulness"], max_failure_rate=0.5)
    hit = summary["hit@1"]
    assert (hit["value"], hit["n"], hit["failures"]) == (0.5, 2, 0)
    assert hit["by_type"] == {
        "lookup": {"value": 1.0, "n": 1, "failures": 0},
        "detail": {"value": 0.0, "n": 1, "failures": 0},
    }
    faith = summary["ragas.faithfulness"]
    assert (faith["value"], faith["n"], faith["failures"], faith["failure_kinds"]) == (0.8, 1, 1, {"timeout": 1})
    assert summary["refusal_rate_unanswerable"]["value"] == 1.0
    assert summary["latency.retrieval_ms.p50"]["value"] == 20.0
    assert summary["recall@10"]["value"] is None and "not_measured" in summary["recall@10"]


def test_summary_reports_not_measured_instead_of_a_number() -> None:
    records = [_record(str(i), "lookup", ["g"], scores={"ragas.faithfulness": 1.0}) for i in range(3)]
    records.append(_record("x", "lookup", ["g"], failures={"ragas.faithfulness": "unparseable"}))
    too_many = summarize(records, {}, judged=["ragas.faithfulness"], max_failure_rate=0.2)["ragas.faithfulness"]
    assert too_many["value"] is None
    assert "judge failed on 1 of 4" in too_many["not_measured"]
    assert too_many["by_type"]["lookup"]["value"] is None

    weak = summarize(records, {"ragas.faithfulness": "judge too weak (tiny)"})["ragas.faithfulness"]
    assert (weak["value"], weak["not_measured"]) == (None, "judge too weak (tiny)")


def test_diff_shows_both_values_and_the_change() -> None:
    a = {
        "hit@1": {"value": 0.5},
        "latency.retrieval_ms.p50": {"value": 20.0},
        "x": {"value": None, "not_measured": "w"},
    }
    b = {"hit@1": {"value": 0.75}, "latency.retrieval_ms.p50": {"value": 30.0}, "new": {"value": 1.0}, "run": {}}
    rows = {r.metric: r for r in diff_summaries(a, b)}
    assert set(rows) == {"hit@1", "latency.retrieval_ms.p50", "x", "new"}
    assert (rows["hit@1"].a, rows["hit@1"].b, rows["hit@1"].change) == ("0.500", "0.750", "+0.250 better")
    assert rows["latency.retrieval_ms.p50"].change == "+10.0 worse"  # latency: lower is better
    assert rows["x"].a == "not measured: w" and rows["x"].change == "-"
    assert rows["new"].a == "-"
    table = format_diff(list(rows.values()), "A", "B")
    assert table.splitlines()[0].split() == ["metric", "A", "B", "change"]
    assert json.dumps(a)  # summaries stay plain JSON


def test_strip_markers() -> None:
    assert strip_markers("BLIP-2 beats Flamingo [1]. It is small [2, 3][4].") == "BLIP-2 beats Flamingo. It is small."
