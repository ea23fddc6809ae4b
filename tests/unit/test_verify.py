"""The verifier's known cases: sentence splitting, content words, support with exact figures, sentence verdicts."""

from __future__ import annotations

import pytest

from paper_agent.verify import (
    adds_to,
    asks_for_figure,
    check_sentence,
    content_words,
    figures,
    split_sentences,
    support,
)

TITLE = "BLIP-2: Bootstrapping Language-Image Pre-training with Frozen Image Encoders"
FIRST = "BLIP-2 bridges the modality gap with a lightweight Querying Transformer."
SECOND = "It achieves state-of-the-art performance on various vision-language tasks, e.g. zero-shot VQAv2."
THIRD = "For example, our model outperforms Flamingo80B by 8.7% on zero-shot VQAv2 with 54x fewer trainable parameters."
ABSTRACT = f"{FIRST} {SECOND}  {THIRD}"
OTHER = ("Sparse Attention Kernels", "We make sparse attention fast on GPUs with block kernels, 1,685 times faster.")
QUESTION = "By how much does BLIP-2 beat Flamingo80B on zero-shot VQAv2?"


def test_sentences_split_at_stops_but_not_at_abbreviations_or_decimals() -> None:
    assert split_sentences(ABSTRACT) == [FIRST, SECOND, THIRD]
    assert split_sentences("As Smith et al. (2020) show, it works. Then  it\nstops!") == [
        "As Smith et al. (2020) show, it works.",
        "Then it stops!",
    ]


def test_content_words_drop_stop_words_and_plurals_and_keep_figures_whole() -> None:
    assert content_words("The models were trained on 1,685 questions with 3.5x fewer kernels") == {
        "model",
        "trained",
        "1685",
        "question",
        "3.5x",
        "fewer",
        "kernel",
    }


def test_figures_are_numbers_without_units_and_names_are_not_figures() -> None:
    assert figures({"3.5x", "43b", "77", "f1", "vqav2"}) == {"3.5", "43", "77"}


def test_a_copied_sentence_is_fully_supported_and_quoted() -> None:
    sentence = "Our model outperforms Flamingo80B by 8.7% on zero-shot VQAv2."
    result = support(sentence, TITLE, ABSTRACT)
    assert result.score == 1.0
    assert result.quote.startswith("For example, our model outperforms Flamingo80B")


def test_a_made_up_figure_zeroes_support_however_much_else_matches() -> None:
    result = support("BLIP-2 outperforms Flamingo80B by 12.5% on zero-shot VQAv2.", TITLE, ABSTRACT)
    assert result.score == 0.0
    assert result.missing_figures == ("12.5",)


def test_a_sentence_about_something_else_has_low_support() -> None:
    assert support("Sparse attention kernels run fast on GPUs.", TITLE, ABSTRACT).score < 0.3


def test_title_words_count_as_source_words() -> None:
    assert support("Bootstrapping language-image pre-training uses frozen image encoders.", TITLE, ABSTRACT).score == 1


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (QUESTION, True),
        ("How many labeled examples does the recipe use?", True),
        ("What F1 score does ELECTRA-Large achieve on SQuAD 2.0?", True),
        ("What accuracy on 10-Split-CIFAR-100 does the baseline reach?", True),
        ("By what factor does the model improve the score?", True),
        ("Which method converts a textual description into a poster layout?", False),
        ("Which works study retrieval-augmented pretraining, and at what scales?", False),
    ],
)
def test_questions_asking_for_a_quantity_are_recognised(question: str, expected: bool) -> None:
    assert asks_for_figure(question) is expected


def test_restating_the_question_adds_nothing() -> None:
    assert not adds_to("BLIP-2 beats Flamingo80B on zero-shot VQAv2.", QUESTION)
    assert adds_to("BLIP-2 beats Flamingo80B by 8.7% with 54x fewer parameters.", QUESTION)


SOURCES = {1: OTHER, 2: (TITLE, ABSTRACT)}
GOOD = "BLIP-2 outperforms Flamingo80B by 8.7% with 54x fewer trainable parameters."


def test_a_sentence_its_citation_supports_is_kept_with_that_citation() -> None:
    checked = check_sentence(GOOD, (2,), SOURCES, QUESTION, 0.6)
    assert (checked.status, checked.cited, checked.kept) == ("supported", (2,), True)
    assert checked.support == 1.0


def test_a_wrong_citation_is_moved_to_the_source_that_supports_the_sentence() -> None:
    checked = check_sentence(GOOD, (1,), SOURCES, QUESTION, 0.6)
    assert (checked.status, checked.cited) == ("reattributed", (2,))


def test_an_uncited_sentence_is_attributed_to_the_source_that_supports_it() -> None:
    checked = check_sentence(GOOD, (), SOURCES, QUESTION, 0.6)
    assert (checked.status, checked.cited) == ("attributed", (2,))


def test_citations_to_sources_not_given_are_removed() -> None:
    checked = check_sentence(GOOD, (7, 2), SOURCES, QUESTION, 0.6)
    assert checked.invalid == (7,) and checked.cited == (2,)


def test_a_citation_that_does_not_support_is_dropped_from_a_kept_sentence() -> None:
    checked = check_sentence(GOOD, (1, 2), SOURCES, QUESTION, 0.6)
    assert checked.cited == (2,)


def test_an_unsupported_sentence_is_not_kept() -> None:
    checked = check_sentence("BLIP-2 was trained on 4,000 TPUs by a team in Paris.", (2,), SOURCES, QUESTION, 0.6)
    assert (checked.status, checked.kept) == ("unsupported", False)


def test_a_sentence_that_only_restates_the_question_is_not_kept() -> None:
    checked = check_sentence("BLIP-2 beats Flamingo80B on zero-shot VQAv2.", (2,), SOURCES, QUESTION, 0.6)
    assert (checked.status, checked.kept) == ("restates the question", False)
