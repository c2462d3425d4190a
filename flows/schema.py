"""Survey definitions: the typed models, and loading YAML into them with path-named problems."""

# The survey file format, spec 1
# ------------------------------
#
#   spec: 1                       format version of the file; this engine reads spec 1
#   id: branch_service            1-32 characters of a-z, 0-9 and _
#   default_locale: id            the locale used when a customer's language has no text
#   locales: [id, en]             codes such as id, en or en_US; every text must exist in each
#   title: {id: "...", en: "..."} a text is a mapping of locale to a non-empty string
#   intro: {id: "...", en: "..."} shown before the first question
#   outro: {id: "...", en: "..."} shown after the last one
#   alerts: {nps: {lte: 6}}       optional: answers at or below these values alert the
#                                 branch's staff (see below); without it, NPS 0-6 and a rating
#                                 in the bottom quarter of its scale (1-2 of 5) alert
#   questions:                    at least one, asked in this order
#     - id: csat                  1-24 characters of a-z, 0-9 and _, unique; not all/any/not
#       type: rating              rating | nps | ces | choice | multi | yesno | text | number
#       text: {id: "...", en: "..."}
#       optional: false           true lets the customer skip it (default false)
#       when: {nps: {lte: 6}}     ask only if this condition over EARLIER answers holds
#
# Keys by type (a key that does not apply to the type is an error, as is any unknown key):
#
#   rating   scale: 2..10, default 5; answers are whole numbers 1..scale (CSAT)
#   nps      answers 0..10                ces   answers 1..7 (7 = very easy)
#   choice   options: 2..24 of {id, text}; option ids are 1-16 characters of a-z, 0-9 and _,
#            unique within the question; option texts are at most 64 characters (buttons)
#   multi    options as for choice; min and max selections, defaults 1 and the option count
#   yesno    answers true or false; contact_consent: true makes it the question whether the
#            bank may contact the customer about these answers (only the last question may)
#   text     max_length: 1..4000, default 1000
#   number   min and max: optional bounds; integer: true (default) or false for decimals
#
# Conditions (see flows/conditions.py): {question_id: {operator: value}}, {all: [...]},
# {any: [...]}, {not: ...}; several keys in one mapping must all hold. Operators: eq ne lt lte
# gt gte in not_in contains answered. Which fit which type:
#
#   rating nps ces number   eq ne lt lte gt gte (a possible answer), in not_in (a list of them)
#   choice                  eq ne (an option id), in not_in (a list of option ids)
#   multi                   contains (an option id)
#   yesno                   eq ne (true or false)
#   every type              answered (true or false)
#
# Alerts: a mapping of question type (nps, rating, ces) to {lte: N}; a finished response with
# an answer of that type at or below N alerts. N must be a possible answer (nps 0..10, ces 1..7,
# rating 1..the largest scale in the survey) and the survey must ask such a question.
# `alerts: {}` turns alerts off for the survey.
#
# Booleans are only true and false (YAML 1.2), so a text such as `en: Yes` needs no quotes;
# texts that contain ':' or '?' inside {...} do.
#
# Loading collects every problem, each named by its path (questions[3].options[1].id), and
# raises one SurveyDefinitionError; a valid file becomes a frozen Survey.

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from flows.conditions import COMBINATORS, Condition, Subject, parse_condition
from flows.errors import N_, Problem, SurveyDefinitionError, described, shown

SPEC_VERSION = 1

Texts: TypeAlias = Mapping[str, str]


class QuestionType(StrEnum):
    """The kinds of question; the value is what a survey file writes."""

    RATING = "rating"
    NPS = "nps"
    CES = "ces"
    CHOICE = "choice"
    MULTI = "multi"
    YESNO = "yesno"
    TEXT = "text"
    NUMBER = "number"


SCALED_TYPES = frozenset({QuestionType.RATING, QuestionType.NPS, QuestionType.CES})
OPTION_TYPES = frozenset({QuestionType.CHOICE, QuestionType.MULTI})

DEFAULT_SCALE = 5
DEFAULT_MAX_LENGTH = 1000
MAX_TEXT_LENGTH = 4000
MAX_OPTION_TEXT_LENGTH = 64
MIN_OPTIONS, MAX_OPTIONS = 2, 24
MIN_SCALE, MAX_SCALE = 2, 10


def localized(texts: Texts, locale: str, default: str) -> str:
    """Pick the text for a locale, falling back to its base language, then to the default."""
    base = re.split(r"[_-]", locale, maxsplit=1)[0]
    for candidate in (locale, base, default):
        if texts.get(candidate):
            return texts[candidate]
    return next(iter(texts.values()), "")


@dataclass(frozen=True)
class Option:
    """One answer a choice or multi question offers."""

    id: str
    text: Texts


@dataclass(frozen=True)
class Question:
    """One question; fields that do not apply to its type keep their defaults.

    `min` and `max` bound the number of selections for multi and the value for number.
    """

    id: str
    type: QuestionType
    text: Texts
    optional: bool = False
    when: Condition | None = None
    options: tuple[Option, ...] = ()
    scale: int | None = None
    min: int | float | None = None
    max: int | float | None = None
    integer: bool = True
    max_length: int | None = None
    contact_consent: bool = False

    @property
    def value_range(self) -> range | None:
        """The whole numbers a rating, nps or ces question accepts; None for other types."""
        if self.type == QuestionType.RATING:
            return range(1, (self.scale or DEFAULT_SCALE) + 1)
        if self.type == QuestionType.NPS:
            return range(0, 11)
        if self.type == QuestionType.CES:
            return range(1, 8)
        return None

    @property
    def option_ids(self) -> tuple[str, ...]:
        """Option ids in definition order, the order answers are stored in."""
        return tuple(option.id for option in self.options)

    def option(self, option_id: str) -> Option | None:
        """The option with this id, or None."""
        return next((option for option in self.options if option.id == option_id), None)


@dataclass(frozen=True)
class Survey:
    """A validated survey definition; `checksum` changes only when its content does."""

    id: str
    spec: int
    default_locale: str
    locales: tuple[str, ...]
    title: Texts
    intro: Texts
    outro: Texts
    questions: tuple[Question, ...]
    checksum: str
    # question type -> the highest answer that alerts; None: the default rule (scoring)
    alerts: Mapping[str, int] | None = None
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {question.id: i for i, question in enumerate(self.questions)}
        object.__setattr__(self, "_index", index)

    def __hash__(self) -> int:
        # Texts are dicts, so the generated hash would fail; id and checksum identify a version.
        return hash((self.id, self.checksum))

    def index_of(self, question_id: str) -> int:
        """Position of a question in the file, from 0; KeyError when there is none."""
        try:
            return self._index[question_id]
        except KeyError:
            raise KeyError(f"survey {self.id!r} has no question {question_id!r}") from None

    def question(self, question_id: str) -> Question:
        """The question with this id; KeyError when there is none."""
        return self.questions[self.index_of(question_id)]

    def has_question(self, question_id: str) -> bool:
        """Whether the survey has a question with this id."""
        return question_id in self._index

    @property
    def contact_question(self) -> str | None:
        """The yes/no question at the end asking whether the bank may contact the customer."""
        last = self.questions[-1] if self.questions else None
        return last.id if last is not None and last.contact_consent else None


def load_survey_file(path: str | Path) -> Survey:
    """Load a survey file; problems name the file, so an editor sees which one is broken."""
    path = Path(path)
    return load_survey_bytes(path.read_bytes(), source=str(path))[0]


def load_survey_bytes(data: bytes, *, source: str = "<bytes>") -> tuple[Survey, str]:
    """Load a survey from a file's bytes (UTF-8); the survey and the text it was read from."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SurveyDefinitionError(source, (_problem("", "not_utf8"),)) from None
    return load_survey(text, source=source), text


def load_survey(text: str, *, source: str = "<string>") -> Survey:
    """Parse and validate a survey definition; raise SurveyDefinitionError listing every problem."""
    data, problems = _parse_yaml(text.removeprefix("\ufeff"))
    if not problems:
        survey, problems = _Validator().survey(data)
        if survey is not None and not problems:
            return survey
    raise SurveyDefinitionError(source, tuple(problems))


MESSAGES: Mapping[str, str] = {
    "not_utf8": N_("the file is not UTF-8 text"),
    "yaml_syntax": N_("the text is not valid YAML: {detail}"),
    "duplicate_key": N_(
        "this key appears more than once in the same mapping (again on line {line})"
    ),
    "not_a_document": N_(
        "the document must be a mapping with keys such as id and questions, got {got}"
    ),
    "unknown_key": N_("unknown key; expected one of {allowed}"),
    "unknown_key_typo": N_("unknown key; did you mean {suggestion!r}?"),
    "key_not_for_type": N_("this key does not apply to {type} questions"),
    "missing_key": N_("this required key is missing"),
    "no_value": N_("this required key has no value"),
    "wrong_type": N_("expected {expected}, got {got}"),
    "unsupported_spec": N_("unsupported spec version {value}; this engine reads spec {supported}"),
    "bad_id": N_("{value} is not a valid id; use 1 to {limit} characters of a-z, 0-9 and _"),
    "reserved_id": N_("{value} is reserved for conditions; choose another question id"),
    "duplicate_question": N_("duplicate question id {value}, already used by questions[{first}]"),
    "duplicate_option": N_("duplicate option id {value}"),
    "bad_locale": N_("{value} is not a locale code such as 'id', 'en' or 'en_US'"),
    "duplicate_locale": N_("locale {value} is listed more than once"),
    "default_not_listed": N_("{value} is not one of the listed locales ({locales})"),
    "missing_text": N_("missing text for locale {locale!r}"),
    "unlisted_locale": N_("locale {locale} is not listed in locales"),
    "empty_text": N_("the text must not be empty"),
    "text_too_long": N_("the text has {length} characters; a message holds at most {limit}"),
    "option_too_long": N_("the text has {length} characters; a button label holds at most {limit}"),
    "unknown_type": N_("unknown question type {value}; use one of {types}"),
    "out_of_bounds": N_("expected a whole number from {low} to {high}, got {value}"),
    "option_count": N_("expected {low} to {high} options, got {count}"),
    "selection_bounds": N_(
        "expected a whole number from 1 to {count}, the number of options, got {value}"
    ),
    "min_above_max": N_("min {min} is greater than max {max}"),
    "not_whole": N_("expected a whole number because integer is true, got {value}"),
    "alert_type": N_("alerts are set for nps, rating or ces answers, not {value}"),
    "alert_no_question": N_("this survey asks no {type} question to alert on"),
    "consent_not_last": N_(
        "only the last question may ask whether the bank may contact the customer"
    ),
}


def _problem(path: str, key: str, **params: Any) -> Problem:
    """A problem of rule `key`, worded in English and keeping its code for translation."""
    return Problem(path, MESSAGES[key].format(**params), key, params)


_ID_LIMITS = {"survey": 32, "question": 24, "option": 16}
_LOCALE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")
_RESERVED = frozenset(COMBINATORS)

_SURVEY_KEYS = ("spec", "id", "default_locale", "locales", "title", "intro", "outro", "questions")
_OPTIONAL_SURVEY_KEYS = ("alerts",)
_ALERT_OPERATORS = ("lte",)
_COMMON_KEYS = ("id", "type", "text", "optional", "when")
_TYPE_KEYS: Mapping[str, tuple[str, ...]] = {
    "rating": ("scale",),
    "nps": (),
    "ces": (),
    "choice": ("options",),
    "multi": ("options", "min", "max"),
    "yesno": ("contact_consent",),
    "text": ("max_length",),
    "number": ("min", "max", "integer"),
}
_ALL_QUESTION_KEYS = tuple(dict.fromkeys(_COMMON_KEYS + sum(_TYPE_KEYS.values(), ())))
_OPTION_KEYS = ("id", "text")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true and false, so `en: Yes` stays text."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _parse_yaml(text: str) -> tuple[Any, list[Problem]]:
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        problems = _duplicate_keys(node, "", set())
        if problems:
            return None, problems
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        detail = _yaml_detail(error, text)
        return None, [_problem("", "yaml_syntax", detail=detail)]
    except RecursionError:
        detail = N_("it is nested too deeply")
        return None, [_problem("", "yaml_syntax", detail=detail)]
    finally:
        if loader is not None:
            loader.dispose()
    return data, []


def _yaml_detail(error: yaml.YAMLError, text: str) -> str:
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - text.rfind("\n", 0, error.position)
        return f"character #x{error.character:04x} is not allowed, at line {line}, column {column}"
    if isinstance(error, yaml.MarkedYAMLError):
        what = error.problem or error.context or "unreadable YAML"
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            what = f"{what} at line {mark.line + 1}, column {mark.column + 1}"
        if "mapping values are not allowed" in what or re.search(r"but got '[?:]'", what):
            what += "; put quotes around texts that contain ':' or '?'"
        return what
    return str(error).strip() or "unreadable YAML"


def _duplicate_keys(node: yaml.Node | None, path: str, seen: set[int]) -> list[Problem]:
    """PyYAML keeps the last of two equal keys silently; an editor deserves to hear about it."""
    if node is None or id(node) in seen:
        return []
    seen.add(id(node))
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            child = f"{path}.{key}" if path else str(key)
            if key is not None and key != "<<":
                if key in keys:
                    line = key_node.start_mark.line + 1
                    problems.append(_problem(child, "duplicate_key", line=line))
                keys.add(key)
            problems.extend(_duplicate_keys(value_node, child, seen))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems.extend(_duplicate_keys(item, f"{path}[{i}]", seen))
    return problems


def _checksum(data: Any) -> str:
    canonical = json.dumps(
        data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class _Draft:
    """What pass one learned about a question, for building it and for checking conditions."""

    index: int
    path: str
    raw: Mapping[str, Any]
    problems: list[Problem]
    question: Question | None = None
    subject: Subject | None = None


class _Validator:
    """Walks a parsed document once, collecting problems in document order."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.locales: tuple[str, ...] = ()
        self.locales_known = False

    def add(self, path: str, key: str, **params: Any) -> None:
        self.problems.append(_problem(path, key, **params))

    def wrong_type(self, path: str, expected: str, value: Any) -> None:
        self.add(path, "wrong_type", expected=expected, got=described(value))

    def keys(
        self,
        raw: Mapping[Any, Any],
        path: str,
        allowed: tuple[str, ...],
        required: tuple[str, ...],
        qtype: QuestionType | None = None,
    ) -> None:
        """Report unknown keys (suggesting the likely one) and missing required keys."""
        for key in raw:
            if key in allowed:
                continue
            where = _child(path, shown(key) if not isinstance(key, str) else key)
            if qtype is not None and key in _ALL_QUESTION_KEYS:
                self.add(where, "key_not_for_type", type=qtype)
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
            if close:
                self.add(where, "unknown_key_typo", suggestion=close[0])
            else:
                self.add(where, "unknown_key", allowed=", ".join(allowed))
        for key in required:
            if key not in raw:
                self.add(_child(path, key), "missing_key")
            elif raw[key] is None:
                self.add(_child(path, key), "no_value")

    def survey(self, data: Any) -> tuple[Survey | None, list[Problem]]:
        if not isinstance(data, Mapping):
            self.add("", "not_a_document", got=described(data))
            return None, self.problems
        self.keys(data, "", _SURVEY_KEYS + _OPTIONAL_SURVEY_KEYS, _SURVEY_KEYS)
        spec = self.spec(data.get("spec"))
        survey_id = self.identifier(data.get("id"), "id", "survey")
        self.locales = self.locale_list(data.get("locales"))
        default = self.default_locale(data.get("default_locale"))
        title, intro, outro = (
            self.texts(data.get(key), key) for key in ("title", "intro", "outro")
        )
        questions = self.questions(data.get("questions"))
        alerts = self.alerts(data["alerts"], questions) if "alerts" in data else None
        if self.problems:
            return None, self.problems
        assert survey_id and spec and default and title and intro and outro, "checked above"
        survey = Survey(
            id=survey_id,
            spec=spec,
            default_locale=default,
            locales=self.locales,
            title=title,
            intro=intro,
            outro=outro,
            questions=questions,
            checksum=_checksum(data),
            alerts=alerts,
        )
        return survey, self.problems

    def alerts(self, value: Any, questions: tuple[Question, ...]) -> dict[str, int] | None:
        """Alert thresholds by question type; each must fit a question the survey asks."""
        if not isinstance(value, Mapping):
            self.wrong_type("alerts", N_("a mapping such as {nps: {lte: 6}}"), value)
            return None
        before = len(self.problems)
        thresholds: dict[str, int] = {}
        for key, rule in value.items():
            path = _child("alerts", shown(key) if not isinstance(key, str) else key)
            if key not in (QuestionType.NPS, QuestionType.RATING, QuestionType.CES):
                self.add(path, "alert_type", value=shown(key))
                continue
            asked = [q.value_range for q in questions if q.type == key and q.value_range]
            if not isinstance(rule, Mapping) or not rule:
                self.wrong_type(path, N_("a mapping such as {lte: 6}"), rule)
                continue
            self.keys(rule, path, _ALERT_OPERATORS, _ALERT_OPERATORS)
            if "lte" not in rule or rule["lte"] is None:
                continue
            if not asked:
                if questions:  # without questions, the questions' own problem says enough
                    self.add(path, "alert_no_question", type=key)
                continue
            low, high = min(r[0] for r in asked), max(r[-1] for r in asked)
            limit = self.bounded(rule["lte"], _child(path, "lte"), low, high)
            if limit is not None:
                thresholds[str(key)] = limit
        return thresholds if len(self.problems) == before else None

    def spec(self, value: Any) -> int | None:
        if value is None:
            return None
        if not _is_whole(value):
            self.wrong_type("spec", N_("a whole number"), value)
        elif value != SPEC_VERSION:
            self.add("spec", "unsupported_spec", value=value, supported=SPEC_VERSION)
        else:
            return value
        return None

    def identifier(self, value: Any, path: str, kind: str) -> str | None:
        """Check an id; None when missing or broken (the problem is already recorded)."""
        if value is None:
            return None
        limit = _ID_LIMITS[kind]
        if not isinstance(value, str):
            self.wrong_type(path, N_("text"), value)
        elif not re.fullmatch(rf"[a-z0-9_]{{1,{limit}}}", value):
            self.add(path, "bad_id", value=shown(value), limit=limit)
        else:
            return value
        return None

    def locale_list(self, value: Any) -> tuple[str, ...]:
        """Check the locale list; texts are checked against it only when it is sound."""
        if value is None:
            return ()
        if not isinstance(value, list) or not value:
            self.wrong_type("locales", N_("a non-empty list of locale codes"), value)
            return ()
        found: list[str] = []
        for i, code in enumerate(value):
            path = f"locales[{i}]"
            if not isinstance(code, str) or not _LOCALE.fullmatch(code):
                self.add(path, "bad_locale", value=shown(code))
            elif code in found:
                self.add(path, "duplicate_locale", value=shown(code))
            else:
                found.append(code)
        self.locales_known = len(found) == len(value)
        return tuple(found)

    def default_locale(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.wrong_type("default_locale", N_("a locale code"), value)
        elif self.locales_known and value not in self.locales:
            listed = ", ".join(self.locales) or "none"
            self.add("default_locale", "default_not_listed", value=shown(value), locales=listed)
        else:
            return value
        return None

    def texts(self, value: Any, path: str, limit: int = MAX_TEXT_LENGTH) -> Texts | None:
        """Check a locale-to-text mapping against the listed locales."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.wrong_type(
                path, N_("a mapping of locale to text, such as {id: ..., en: ...}"), value
            )
            return None
        ok = True
        for locale, text in value.items():
            where = _child(path, locale if isinstance(locale, str) else shown(locale))
            if self.locales_known and locale not in self.locales:
                self.add(where, "unlisted_locale", locale=shown(locale))
            elif not isinstance(text, str):
                self.wrong_type(where, N_("text"), text)
            elif not text.strip():
                self.add(where, "empty_text")
            elif len(text) > limit:
                key = "text_too_long" if limit == MAX_TEXT_LENGTH else "option_too_long"
                self.add(where, key, length=len(text), limit=limit)
            else:
                continue
            ok = False
        for locale in self.locales if self.locales_known else ():
            if locale not in value:
                self.add(path, "missing_text", locale=locale)
                ok = False
        return dict(value) if ok else None

    def questions(self, value: Any) -> tuple[Question, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not value:
            self.wrong_type("questions", N_("a non-empty list of questions"), value)
            return ()
        drafts = [self.question(raw, i, value) for i, raw in enumerate(value)]
        subjects: dict[str, Subject] = {}
        for draft in drafts:
            if draft.subject is not None:
                subjects.setdefault(draft.raw["id"], draft.subject)
        built: list[Question] = []
        for draft in drafts:
            last = draft.index == len(value) - 1
            if draft.raw.get("type") == "yesno" and draft.raw.get("contact_consent") and not last:
                draft.problems.append(
                    _problem(_child(draft.path, "contact_consent"), "consent_not_last")
                )
            when = self.condition(draft, subjects)
            self.problems.extend(draft.problems)
            if draft.question is not None:
                built.append(_with_when(draft.question, when))
        return tuple(built)

    def condition(self, draft: _Draft, subjects: Mapping[str, Subject]) -> Condition | None:
        if "when" not in draft.raw or not isinstance(draft.raw.get("id"), str):
            return None
        condition, problems = parse_condition(
            draft.raw["when"], f"{draft.path}.when", subjects, draft.raw["id"], draft.index
        )
        draft.problems.extend(problems)
        return condition

    def question(self, raw: Any, index: int, siblings: list[Any]) -> _Draft:
        """Check one question on its own; conditions wait until every question is known."""
        path = f"questions[{index}]"
        outer, self.problems = self.problems, []
        try:
            if not isinstance(raw, Mapping):
                self.wrong_type(path, N_("a mapping"), raw)
                return _Draft(index, path, {}, self.problems)
            return self.question_body(raw, index, path, siblings)
        finally:
            self.problems = outer

    def question_body(
        self, raw: Mapping[str, Any], index: int, path: str, siblings: list[Any]
    ) -> _Draft:
        qtype = self.question_type(raw.get("type"), _child(path, "type"))
        allowed = _COMMON_KEYS + _TYPE_KEYS[qtype] if qtype else _ALL_QUESTION_KEYS
        required = ("id", "type", "text") + (("options",) if qtype in OPTION_TYPES else ())
        self.keys(raw, path, allowed, required, qtype)
        qid = self.question_id(raw.get("id"), _child(path, "id"), index, siblings)
        text = self.texts(raw.get("text"), _child(path, "text"))
        optional = self.flag(raw.get("optional", False), _child(path, "optional"))
        draft = _Draft(index, path, raw, self.problems)
        settings = self.settings(qtype, raw, path) if qtype else None
        if qtype is None and "options" in raw:
            self.options(raw["options"], _child(path, "options"))
        if isinstance(raw.get("id"), str):
            draft.subject = _subject(index, qid, qtype, settings)
        if qid and qtype and text is not None and optional is not None and settings is not None:
            draft.question = Question(id=qid, type=qtype, text=text, optional=optional, **settings)
        return draft

    def question_type(self, value: Any, path: str) -> QuestionType | None:
        if value is None:
            return None
        if isinstance(value, str) and value in _TYPE_KEYS:
            return QuestionType(value)
        types = ", ".join(QuestionType)
        self.add(path, "unknown_type", value=shown(value), types=types)
        return None

    def question_id(self, value: Any, path: str, index: int, siblings: list[Any]) -> str | None:
        qid = self.identifier(value, path, "question")
        if qid is None:
            return None
        if qid in _RESERVED:
            self.add(path, "reserved_id", value=shown(qid))
            return None
        for first, other in enumerate(siblings[:index]):
            if isinstance(other, Mapping) and other.get("id") == qid:
                self.add(path, "duplicate_question", value=shown(qid), first=first)
                return None
        return qid

    def flag(self, value: Any, path: str) -> bool | None:
        if isinstance(value, bool):
            return value
        self.wrong_type(path, N_("true or false"), value)
        return None

    def settings(self, qtype: QuestionType, raw: Mapping[str, Any], path: str) -> dict | None:
        """The type-specific fields of a Question, or None when one of them is broken."""
        before = len(self.problems)
        settings: dict[str, Any] = {}
        if qtype == QuestionType.RATING:
            value = raw.get("scale", DEFAULT_SCALE)
            settings["scale"] = self.bounded(value, _child(path, "scale"), MIN_SCALE, MAX_SCALE)
        elif qtype == QuestionType.TEXT:
            value = raw.get("max_length", DEFAULT_MAX_LENGTH)
            where = _child(path, "max_length")
            settings["max_length"] = self.bounded(value, where, 1, MAX_TEXT_LENGTH)
        elif qtype == QuestionType.NUMBER:
            settings.update(self.number_settings(raw, path))
        elif qtype == QuestionType.YESNO and "contact_consent" in raw:
            where = _child(path, "contact_consent")
            settings["contact_consent"] = self.flag(raw["contact_consent"], where)
        elif qtype in OPTION_TYPES:
            options = self.options(raw.get("options"), _child(path, "options"))
            if qtype == QuestionType.MULTI:
                settings.update(self.selection_settings(raw, path, options))
            if options is None:
                return None
            settings["options"] = options
        return settings if len(self.problems) == before else None

    def bounded(self, value: Any, path: str, low: int, high: int) -> int | None:
        if _is_whole(value) and low <= value <= high:
            return value
        self.add(path, "out_of_bounds", low=low, high=high, value=shown(value))
        return None

    def number_settings(self, raw: Mapping[str, Any], path: str) -> dict[str, Any]:
        integer = self.flag(raw.get("integer", True), _child(path, "integer"))
        bounds: dict[str, Any] = {"integer": integer is not False}
        for key in ("min", "max"):
            value = raw.get(key)
            if value is None:
                continue
            where = _child(path, key)
            if not _is_number(value):
                self.wrong_type(where, N_("a number"), value)
            elif integer and value != int(value):
                self.add(where, "not_whole", value=shown(value))
            else:
                bounds[key] = int(value) if integer else value
        self.order(bounds, path)
        return bounds

    def selection_settings(
        self, raw: Mapping[str, Any], path: str, options: tuple[Option, ...] | None
    ) -> dict[str, Any]:
        count = len(options) if options else len(raw.get("options") or ())
        bounds: dict[str, Any] = {}
        for key, default in (("min", 1), ("max", count)):
            value = raw.get(key, default)
            if _is_whole(value) and 1 <= value <= max(count, 1):
                bounds[key] = value
            elif options is not None:
                self.add(_child(path, key), "selection_bounds", count=count, value=shown(value))
        self.order(bounds, path)
        return bounds

    def order(self, bounds: Mapping[str, Any], path: str) -> None:
        low, high = bounds.get("min"), bounds.get("max")
        if low is not None and high is not None and low > high:
            self.add(_child(path, "min"), "min_above_max", min=shown(low), max=shown(high))

    def options(self, value: Any, path: str) -> tuple[Option, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            self.wrong_type(path, N_("a list of options"), value)
            return None
        before = len(self.problems)
        if not MIN_OPTIONS <= len(value) <= MAX_OPTIONS:
            limits = {"low": MIN_OPTIONS, "high": MAX_OPTIONS}
            self.add(path, "option_count", count=len(value), **limits)
        options: list[Option] = []
        for i, raw in enumerate(value):
            option = self.option(raw, f"{path}[{i}]", options)
            if option is not None:
                options.append(option)
        return tuple(options) if len(self.problems) == before else None

    def option(self, raw: Any, path: str, earlier: list[Option]) -> Option | None:
        if not isinstance(raw, Mapping):
            self.wrong_type(path, N_("a mapping with id and text"), raw)
            return None
        self.keys(raw, path, _OPTION_KEYS, _OPTION_KEYS)
        oid = self.identifier(raw.get("id"), _child(path, "id"), "option")
        if oid is not None and any(option.id == oid for option in earlier):
            self.add(_child(path, "id"), "duplicate_option", value=shown(oid))
            oid = None
        text = self.texts(raw.get("text"), _child(path, "text"), MAX_OPTION_TEXT_LENGTH)
        return Option(oid, text) if oid is not None and text is not None else None


def _subject(
    index: int, qid: str | None, qtype: QuestionType | None, settings: Mapping[str, Any] | None
) -> Subject:
    """Describe a question for condition checks; unknown parts switch the type-based checks off."""
    if qid is None or qtype is None or settings is None:
        return Subject(index, None)
    probe = Question(id=qid, type=qtype, text={}, **settings)
    if qtype in SCALED_TYPES:
        values = probe.value_range
        assert values is not None
        return Subject(index, qtype, low=values[0], high=values[-1])
    if qtype == QuestionType.NUMBER:
        return Subject(index, qtype, low=probe.min, high=probe.max, integer=probe.integer)
    return Subject(index, qtype, option_ids=probe.option_ids)


def _with_when(question: Question, when: Condition | None) -> Question:
    return question if when is None else replace(question, when=when)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
