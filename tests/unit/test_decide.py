"""The answerability decision: each signal on known cases, the calibrated model, and what `decide` chooses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from paper_agent.decide import (
    Calibration,
    Decision,
    answering_sentences,
    asks_for_several,
    decide,
    load_calibration,
    read_signals,
    states_contribution,
)
from paper_agent.errors import AgentError
from paper_agent.lexical import LexicalIndex
from paper_agent.settings import AnswerSettings
from paper_agent.signals import (
    FEATURES,
    absent_names,
    asks_for_paper,
    figure_missing,
    introduced_absent,
    missing_idf,
    named_terms,
    names_lacking,
    term_coverage,
    unseen_terms,
)
from paper_agent.sources import prepare_sources
from paper_agent.types import PaperHit, Passage
from tests.conftest import HashEmbedder


def passage(pid: str, title: str, text: str) -> Passage:
    return Passage(f"{pid}:0", pid, title, text, 0.0)


ROPE = passage("prope", "Rotary Position Embeddings", "We encode positions by rotating query and key vectors.")
TABPFN = passage(
    "ptab",
    "TabPFN: A Transformer That Solves Small Tabular Classification Problems in a Second",
    "We present TabPFN, a trained Transformer for small tabular datasets. "
    "It is trained offline on synthetic datasets drawn from a prior. "
    "On 18 datasets from OpenML-CC18 it matches AutoML systems with a 230x speedup.",
)
DINO = passage("pdino", "DINOv2: Learning Robust Visual Features", "We pretrain a 1B-parameter ViT on curated images.")
LEXICAL = LexicalIndex.build([ROPE, TABPFN, DINO])


def hit(p: Passage, score: float, dense: float | None = None, lexical: float | None = None) -> PaperHit:
    return PaperHit(p.paper_id, p.title, score, (p,), dense=dense, lexical=lexical)


# --- signals -------------------------------------------------------------------------------------


def test_named_terms_are_acronyms_camel_case_letters_with_digits_and_capitalised_words_after_the_first() -> None:
    question = "Does LoRA beat DINOv2 or GPT-4 on ImageNet with a Transformer in 2023?"
    assert named_terms(question) == ["LoRA", "DINOv2", "GPT-4", "ImageNet", "Transformer"]


def test_a_named_term_no_chunk_contains_is_absent_and_one_the_collection_has_is_not() -> None:
    assert absent_names("What speed-up does Medusa report over DINOv2?", LEXICAL) == ["Medusa"]
    assert absent_names("Which paper introduces TabPFN?", LEXICAL) == []


def test_a_name_the_collection_has_but_the_top_paper_lacks_counts_against_it_by_its_rarity() -> None:
    lacking = names_lacking("How does TabPFN compare with a ViT on OpenML-CC18?", TABPFN.text, LEXICAL)
    assert list(lacking) == ["ViT"]  # TabPFN and OpenML-CC18 are in the paper; ViT only in DINOv2's
    assert lacking["ViT"] > 0.0
    assert names_lacking("Does TabPFN beat Medusa?", TABPFN.text, LEXICAL) == {}  # in no paper: absent_names' job
    assert names_lacking("Which paper rotates query and key vectors?", ROPE.text, LEXICAL) == {}  # no name asked


def test_a_question_asking_for_the_paper_that_introduces_an_unmentioned_name_is_ruled_out() -> None:
    assert introduced_absent("Which paper proposes Medusa, with extra decoding heads?", LEXICAL) == ["Medusa"]
    assert introduced_absent("Which work introduced SwAV's online clustering?", LEXICAL) == ["SwAV"]
    assert introduced_absent("Which paper introduces TabPFN?", LEXICAL) == []  # the collection has it
    assert introduced_absent("What speed-up does Medusa report over DINOv2?", LEXICAL) == []  # not asked as new


def test_term_coverage_weights_rare_terms_over_common_ones() -> None:
    full = term_coverage("tabular datasets synthetic prior", TABPFN.text, LEXICAL)
    assert full == pytest.approx(1.0)
    assert term_coverage("rotating tabular datasets", TABPFN.text, LEXICAL) < 1.0
    assert term_coverage("zebra", TABPFN.text, LEXICAL) == 0.0  # no indexed term: nothing to cover


def test_missing_idf_counts_collection_terms_the_top_paper_lacks_and_ignores_unseen_ones() -> None:
    assert missing_idf("tabular datasets", TABPFN.text, LEXICAL) == 0.0
    assert missing_idf("tabular rotating", TABPFN.text, LEXICAL) > 0.0  # "rotating" is in another paper
    assert missing_idf("tabular zebra", TABPFN.text, LEXICAL) == 0.0  # "zebra" is in no paper: unseen_terms' job
    assert unseen_terms("tabular datasets", LEXICAL) == 0.0
    more_unseen = unseen_terms("tabular zebra giraffe", LEXICAL)
    assert more_unseen > unseen_terms("tabular datasets synthetic zebra", LEXICAL) > 0.0


def test_a_question_that_asks_for_a_paper_is_told_from_one_that_asks_about_one() -> None:
    for question in (
        "Which model classifies small tables in about a second?",
        "Is there work on rotating query vectors?",
        "How can one pretrain without labels?",
        "Has anyone measured how typical training examples are?",
    ):
        assert asks_for_paper(question), question
    for question in ("How much faster is TabPFN than AutoML?", "What accuracy does DINOv2 reach on ImageNet?"):
        assert not asks_for_paper(question), question


def test_a_figure_question_misses_its_figure_only_when_no_close_sentence_gives_a_new_one() -> None:
    sentences = ["It is trained offline.", "It has a 230x speedup."]
    assert not figure_missing("How much faster is it?", sentences, [0.9, 0.5])
    assert figure_missing("How much faster is it?", sentences[:1], [0.9])
    assert not figure_missing("Which paper trains offline?", sentences[:1], [0.9])  # not a figure question


def test_questions_about_several_papers_are_recognised() -> None:
    assert asks_for_several("Which papers bootstrap LLM alignment, and how do they differ?")
    assert not asks_for_several("Which paper introduces TabPFN?")


def test_every_signal_is_computed_for_the_top_paper() -> None:
    question = "Which transformer classifies small tabular datasets?"
    hits = [hit(TABPFN, 1.0, 0.7, 9.0), hit(DINO, 0.3, 0.4, 1.0)]
    sources = prepare_sources(question, [TABPFN, DINO], HashEmbedder(), 100)
    values = read_signals(question, hits, sources, LEXICAL)
    assert set(values) == set(FEATURES)
    assert values["dense_top"] == 0.7 and values["asks_for_paper"] == 1.0 and values["unseen_names"] == 0.0


# --- the calibrated model and the decision ---------------------------------------------------------


def calibration(weight: float = 10.0, threshold: float = 0.5) -> Calibration:
    """A model that reads only the dense cosine: P > 0.5 exactly when it is above 0.5."""
    features = tuple(FEATURES)
    coef = tuple(weight if f == "dense_top" else 0.0 for f in features)
    mean = tuple(0.5 if f == "dense_top" else 0.0 for f in features)
    return Calibration(features, mean, (1.0,) * len(features), coef, 0.0, threshold)


def test_the_probability_is_a_logistic_of_the_standardised_signals() -> None:
    values = dict.fromkeys(FEATURES, 0.0) | {"dense_top": 0.6}
    assert calibration().probability(values) == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_the_shipped_calibration_loads_and_names_only_known_signals() -> None:
    shipped = load_calibration()
    assert set(shipped.features) <= set(FEATURES) and 0.0 < shipped.threshold < 1.0
    assert shipped.meta["dev_set"]["sha256"] and shipped.meta["dev_set"]["path"] == "dev.jsonl"


def test_a_calibration_file_naming_an_unknown_signal_is_refused(tmp_path: Path) -> None:
    record = calibration().to_json() | {"features": ["dense_top", "shoe_size"]}
    path = tmp_path / "answerability.json"
    path.write_text(json.dumps(record))
    with pytest.raises(AgentError, match="shoe_size"):
        load_calibration(path)


def decided(question: str, *hits: PaperHit, settings: AnswerSettings | None = None) -> Decision:
    sources = prepare_sources(question, [h.passages[0] for h in hits], HashEmbedder(), 100)
    return decide(question, list(hits), sources, LEXICAL, calibration(), settings or AnswerSettings())


def test_a_question_for_the_paper_introducing_an_unmentioned_name_is_refused_however_close_the_search() -> None:
    decision = decided("Which paper proposes Medusa for tabular data?", hit(TABPFN, 1.0, 0.99))
    assert not decision.answerable and decision.score == 0.0
    assert "introduces Medusa" in decision.reason and "the model alone: answerability 0.99" in decision.reason
    assert [h.paper_id for h in decision.closest] == ["ptab"]


def test_a_question_below_the_threshold_is_refused_with_the_closest_papers_and_why() -> None:
    decision = decided("What speed-up does Medusa report?", hit(TABPFN, 1.0, 0.3), hit(DINO, 0.9, 0.2))
    assert not decision.answerable and decision.chosen == ()
    assert [h.paper_id for h in decision.closest] == ["ptab", "pdino"]
    assert "below 0.5" in decision.reason and "Medusa" in decision.reason


def test_an_answerable_question_chooses_the_top_paper_and_the_sentences_that_answer() -> None:
    question = "How much faster than AutoML is the transformer for small tabular datasets?"
    decision = decided(question, hit(TABPFN, 1.0, 0.8), hit(DINO, 0.2, 0.3))
    assert decision.answerable and decision.score > 0.9
    (chosen,) = decision.chosen
    assert chosen.hit.paper_id == "ptab" and any("230x" in s for s in chosen.sentences)
    assert len(chosen.sentences) == 2


def test_papers_too_close_to_call_are_all_named_ranked() -> None:
    question = "Which transformer for small tabular datasets?"
    close = decided(question, hit(TABPFN, 1.0, 0.8), hit(DINO, 0.9, 0.3))
    assert [c.hit.paper_id for c in close.chosen] == ["ptab", "pdino"]
    far = decided(question, hit(TABPFN, 1.0, 0.8), hit(DINO, 0.5, 0.3))
    assert [c.hit.paper_id for c in far.chosen] == ["ptab"]


def test_a_figure_question_whose_papers_give_no_figure_is_refused() -> None:
    decision = decided("How many GPU hours did the 1B ViT take?", hit(ROPE, 1.0, 0.9))
    assert not decision.answerable and "figure" in decision.reason


def test_the_threshold_setting_overrides_the_calibrated_one() -> None:
    settings = AnswerSettings(min_answerability=0.99)
    decision = decided("Which transformer for tabular data?", hit(TABPFN, 1.0, 0.8), settings=settings)
    assert not decision.answerable and decision.threshold == 0.99


def test_no_hits_is_a_refusal() -> None:
    assert not decide("anything", [], [], LEXICAL, calibration(), AnswerSettings()).answerable


def test_answering_sentences_prefers_the_sentence_that_says_what_is_asked() -> None:
    sentences = ["We study tables.", "It is trained offline on synthetic datasets drawn from a prior."]
    found = answering_sentences("trained offline synthetic prior", sentences, [0.5, 0.4], LEXICAL)
    assert found == tuple(sentences)  # both quoted, in passage order
    assert answering_sentences("How many GPUs?", sentences, [0.5, 0.4], LEXICAL) is None


def test_a_contribution_sentence_is_recognised_by_its_cue_phrase() -> None:
    assert states_contribution("We present TabPFN, a trained Transformer for small tabular datasets.")
    assert states_contribution("In this work, we study how transformers generalise.")
    assert states_contribution("This paper introduces a benchmark for tabular data.")
    assert states_contribution("To address this, we propose a simple method.")
    assert not states_contribution("Prior methods propose heavy pipelines.")
    assert not states_contribution("Tabular data is hard for deep learning.")


BACKGROUND = [
    "Small tabular classification problems are hard for transformers.",
    "Deep transformers rarely win small tabular classification problems.",
    "We introduce TabPFN.",
    "It is trained offline.",
]


def test_a_question_asking_for_a_paper_quotes_what_the_paper_contributes() -> None:
    # The two background sentences lead by cosine and terms; the question asks *for* a paper, whose answer is
    # the sentence that names the contribution: it takes the second place.
    question = "Which transformer solves small tabular classification problems?"
    found = answering_sentences(question, BACKGROUND, [0.6, 0.55, 0.3, 0.2], LEXICAL)
    assert found == (BACKGROUND[0], BACKGROUND[2])


def test_a_question_about_a_paper_keeps_the_ranking() -> None:
    question = "What does TabPFN do on small tabular classification problems?"
    assert not asks_for_paper(question)
    found = answering_sentences(question, BACKGROUND, [0.6, 0.55, 0.3, 0.2], LEXICAL)
    assert found is not None and BACKGROUND[0] in found and BACKGROUND[2] not in found


def test_a_contribution_already_quoted_is_not_replaced() -> None:
    sentences = ["We present TabPFN for small tabular classification.", *BACKGROUND[:2]]
    question = "Which transformer solves small tabular classification problems?"
    found = answering_sentences(question, sentences, [0.6, 0.55, 0.5], LEXICAL)
    assert found is not None and sentences[0] in found and len(found) == 2
