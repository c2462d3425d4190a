"""Conditions: parsing the YAML shapes, deciding them, and the three-valued 'could hold'."""

from __future__ import annotations

from typing import Any

import pytest

from flows.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Not,
    Subject,
    could_hold,
    evaluate,
    parse_condition,
    references,
)

SUBJECTS = {
    "csat": Subject(0, "rating", low=1, high=5),
    "nps": Subject(1, "nps", low=0, high=10),
    "reason": Subject(2, "choice", option_ids=("queue", "staff")),
    "improve": Subject(3, "multi", option_ids=("speed", "comfort")),
    "resolved": Subject(4, "yesno"),
    "comment": Subject(5, "text"),
    "wait": Subject(6, "number", low=0, integer=False),
    "follow_up": Subject(7, "text"),
}


def parse(raw: Any) -> Any:
    condition, problems = parse_condition(raw, "when", SUBJECTS, "follow_up", 7)
    assert problems == [], problems
    return condition


@pytest.mark.parametrize(
    ("raw", "tree"),
    [
        ({"nps": {"lte": 6}}, Compare("nps", "lte", 6)),
        (
            {"nps": {"gte": 1, "lte": 6}},
            AllOf((Compare("nps", "gte", 1), Compare("nps", "lte", 6))),
        ),
        (
            {"nps": {"lte": 6}, "resolved": {"eq": False}},
            AllOf((Compare("nps", "lte", 6), Compare("resolved", "eq", False))),
        ),
        (
            {"any": [{"csat": {"in": [1, 2]}}, {"reason": {"eq": "queue"}}]},
            AnyOf((Compare("csat", "in", (1, 2)), Compare("reason", "eq", "queue"))),
        ),
        ({"not": {"improve": {"contains": "speed"}}}, Not(Compare("improve", "contains", "speed"))),
        (
            {"all": [{"comment": {"answered": True}}]},
            AllOf((Compare("comment", "answered", True),)),
        ),
        ({"wait": {"gt": 2.5}}, Compare("wait", "gt", 2.5)),
    ],
)
def test_parse_builds_the_tree(raw: Any, tree: Any) -> None:
    assert parse(raw) == tree


def test_parse_reports_every_problem_with_its_path() -> None:
    raw = {"any": [{"nps": {"lte": 11}}, {"reason": {"eq": "price"}}], "later": {"eq": 1}}
    condition, problems = parse_condition(raw, "questions[2].when", SUBJECTS, "reason", 2)
    assert condition is None
    assert [p.path for p in problems] == [
        "questions[2].when.any[0].nps.lte",
        "questions[2].when.any[1].reason",
        "questions[2].when.later",
    ]


ANSWERS = {
    "csat": 2,
    "nps": 6,
    "reason": "queue",
    "improve": ["speed"],
    "resolved": False,
    "comment": None,
    "wait": 12.5,
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"nps": {"eq": 6}}, True),
        ({"nps": {"ne": 6}}, False),
        ({"nps": {"lt": 6}}, False),
        ({"nps": {"lte": 6}}, True),
        ({"nps": {"gt": 5}}, True),
        ({"nps": {"gte": 7}}, False),
        ({"csat": {"in": [1, 2]}}, True),
        ({"csat": {"not_in": [1, 2]}}, False),
        ({"reason": {"eq": "queue"}}, True),
        ({"reason": {"in": ["staff"]}}, False),
        ({"improve": {"contains": "speed"}}, True),
        ({"improve": {"contains": "comfort"}}, False),
        ({"resolved": {"eq": False}}, True),
        ({"resolved": {"ne": False}}, False),
        ({"wait": {"lte": 12.5}}, True),
        ({"comment": {"answered": True}}, False),
        ({"comment": {"answered": False}}, True),
        ({"resolved": {"answered": True}}, True),
        ({"all": [{"nps": {"lte": 6}}, {"csat": {"gte": 3}}]}, False),
        ({"any": [{"nps": {"lte": 6}}, {"csat": {"gte": 3}}]}, True),
        ({"not": {"nps": {"lte": 6}}}, False),
    ],
)
def test_evaluate(raw: Any, expected: bool) -> None:
    assert evaluate(parse(raw), ANSWERS) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"])
def test_an_unanswered_question_makes_every_comparison_false(op: str) -> None:
    value = [0] if op in ("in", "not_in") else 0
    condition = parse({"nps": {op: value}})
    assert evaluate(condition, {}) is False
    assert evaluate(condition, {"nps": None}) is False
    assert evaluate(Not(condition), {"nps": None}) is True


def test_contains_on_a_skipped_multi_is_false() -> None:
    assert evaluate(parse({"improve": {"contains": "speed"}}), {"improve": None}) is False


@pytest.mark.parametrize(
    ("raw", "answers", "unknown", "expected"),
    [
        ({"nps": {"lte": 6}}, {}, {"nps"}, True),
        ({"nps": {"lte": 6}}, {"nps": 9}, set(), False),
        ({"not": {"nps": {"lte": 6}}}, {}, {"nps"}, True),
        ({"all": [{"nps": {"lte": 6}}, {"csat": {"eq": 5}}]}, {"csat": 4}, {"nps"}, False),
        ({"all": [{"nps": {"lte": 6}}, {"csat": {"eq": 4}}]}, {"csat": 4}, {"nps"}, True),
        ({"any": [{"nps": {"lte": 6}}, {"csat": {"eq": 5}}]}, {"csat": 4}, {"nps"}, True),
        ({"any": [{"nps": {"lte": 6}}, {"csat": {"eq": 5}}]}, {"csat": 4, "nps": 9}, set(), False),
        ({"any": [{"nps": {"lte": 6}}, {"csat": {"eq": 4}}]}, {"csat": 4}, {"nps"}, True),
        ({"comment": {"answered": False}}, {}, set(), True),
        ({"comment": {"answered": False}}, {}, {"comment"}, True),
    ],
)
def test_could_hold_treats_unknown_answers_as_possible(
    raw: Any, answers: dict, unknown: set, expected: bool
) -> None:
    assert could_hold(parse(raw), answers, unknown) is expected


def test_could_hold_agrees_with_evaluate_once_everything_is_known() -> None:
    condition = parse({"any": [{"nps": {"lte": 6}}, {"not": {"resolved": {"eq": True}}}]})
    for answers in ({"nps": 3, "resolved": True}, {"nps": 9, "resolved": True}, {"nps": 9}):
        assert could_hold(condition, answers, ()) is evaluate(condition, answers)


def test_references_lists_every_question_named() -> None:
    condition = parse(
        {"any": [{"nps": {"lte": 6}}, {"not": {"csat": {"eq": 5}}}], "resolved": {"eq": True}}
    )
    assert references(condition) == {"nps", "csat", "resolved"}


def test_a_wrongly_typed_stored_answer_never_raises() -> None:
    assert evaluate(parse({"nps": {"lte": 6}}), {"nps": "six"}) is False
