"""Alert thresholds in survey files: loaded as written, the detractor rule without them, and
`alerts: {}` for a survey that never alerts."""

from __future__ import annotations

from flows import load_survey
from flows.scoring import alerting

SURVEY = """
spec: 1
id: thresholds
default_locale: id
locales: [id, en]
title: {id: Survei, en: Survey}
intro: {id: Halo, en: Hello}
outro: {id: Terima kasih, en: Thank you}
%s
questions:
  - id: csat
    type: rating
    scale: 5
    text: {id: "Puas?", en: "Satisfied?"}
  - id: nps
    type: nps
    text: {id: "Rekomendasi?", en: "Recommend?"}
  - id: effort
    type: ces
    text: {id: "Mudah?", en: "Easy?"}
  - id: comment
    type: text
    optional: true
    text: {id: "Lainnya?", en: "Anything else?"}
"""


def test_thresholds_from_the_file_decide() -> None:
    survey = load_survey(SURVEY % "alerts: {nps: {lte: 4}, rating: {lte: 1}, ces: {lte: 2}}")
    assert survey.alerts == {"nps": 4, "rating": 1, "ces": 2}
    assert alerting(survey, {"csat": 2, "nps": 5, "effort": 3, "comment": "x"}) == []
    assert alerting(survey, {"csat": 1, "nps": 4, "effort": 2}) == ["csat", "nps", "effort"]
    assert alerting(survey, {"csat": None, "nps": None}) == []


def test_without_thresholds_the_detractor_rule_holds() -> None:
    survey = load_survey(SURVEY % "")
    assert survey.alerts is None
    assert alerting(survey, {"csat": 3, "nps": 7, "effort": 1}) == []
    assert alerting(survey, {"csat": 2, "nps": 6}) == ["csat", "nps"]


def test_empty_alerts_never_alert() -> None:
    survey = load_survey(SURVEY % "alerts: {}")
    assert survey.alerts == {}
    assert alerting(survey, {"csat": 1, "nps": 0, "effort": 1}) == []


def test_a_threshold_changes_the_version() -> None:
    assert load_survey(SURVEY % "alerts: {nps: {lte: 4}}").checksum != (
        load_survey(SURVEY % "alerts: {nps: {lte: 5}}").checksum
    )
