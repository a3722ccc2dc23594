"""Rewrite a question's relative time words into explicit dates (``newsrag eval --undated``).

A quiz question says "this week" because it carries the date it was asked; a user asking
an archive today cannot. :func:`explicit_dates` turns the relative words into the dates
they meant, computed from the question's date, so the question can be asked with no
as-of date at all::

    >>> from datetime import date
    >>> explicit_dates("Who won this week?", date(2022, 6, 16))
    'Who won in the week of 13 June 2022?'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "January February March April May June July August September October November December"
).split()


def day_text(d: date) -> str:
    """``13 June 2022``: day, month name, year, as the rewritten questions say it.

    >>> day_text(date(2022, 6, 3))
    '3 June 2022'
    """
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _month_text(d: date) -> str:
    return f"{_MONTHS[d.month - 1]} {d.year}"


def _week_start(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _shift_month(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _weekday_before(d: date, name: str) -> date:
    """The last ``name``-day on or before ``d``: news says "on Wednesday" of the past."""
    return d - timedelta(days=(d.weekday() - _WEEKDAYS.index(name.lower())) % 7)


# (pattern, replacement given the match and the question's date). Ordered: the longer
# phrase first ("earlier this month" before "this month"). "in"/"on" is part of the
# replacement, so a phrase after "as of" or "since" drops its own preposition.
_Rule = tuple[re.Pattern[str], Callable[[re.Match[str], date], str]]
_DAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
# "Monday, June 13" is a date already: the weekday is left alone.
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"


def _rule(pattern: str, make: Callable[[re.Match[str], date], str]) -> _Rule:
    return re.compile(pattern, re.IGNORECASE), make


_RULES: list[_Rule] = [
    _rule(r"\bas of this week\b", lambda m, d: f"as of the week of {day_text(_week_start(d))}"),
    _rule(r"\bin recent days\b", lambda m, d: f"in the days before {day_text(d)}"),
    _rule(r"\bin recent (weeks|months)\b", lambda m, d: f"in the {m[1]} before {day_text(d)}"),
    _rule(r"\bin recent years\b", lambda m, d: f"in the years before {d.year}"),
    _rule(
        r"\b(?:over|in) the (?:past|last) (year|12 months)\b",
        lambda m, d: f"in the {m[1]} to {day_text(d)}",
    ),
    _rule(r"\ba year ago\b", lambda m, d: f"a year before {day_text(d)}"),
    _rule(r"\bthis week\b", lambda m, d: f"in the week of {day_text(_week_start(d))}"),
    _rule(
        r"\blast week\b",
        lambda m, d: f"in the week of {day_text(_week_start(d) - timedelta(days=7))}",
    ),
    _rule(
        r"\bnext week\b",
        lambda m, d: f"in the week of {day_text(_week_start(d) + timedelta(days=7))}",
    ),
    _rule(r"\b(earlier|later) this month\b", lambda m, d: f"{m[1]} in {_month_text(d)}"),
    _rule(r"\bthis month\b", lambda m, d: f"in {_month_text(d)}"),
    _rule(r"\blast month\b", lambda m, d: f"in {_month_text(_shift_month(d, -1))}"),
    _rule(r"\bnext month\b", lambda m, d: f"in {_month_text(_shift_month(d, 1))}"),
    _rule(r"\b(earlier|later) this year\b", lambda m, d: f"{m[1]} in {d.year}"),
    _rule(r"\bthis year\b", lambda m, d: f"in {d.year}"),
    _rule(r"\blast year\b", lambda m, d: f"in {d.year - 1}"),
    _rule(r"\bnext year\b", lambda m, d: f"in {d.year + 1}"),
    _rule(r"\bthis (fall|autumn|spring|summer|winter)\b", lambda m, d: f"in {m[1]} {d.year}"),
    _rule(r"\btoday\b", lambda m, d: f"on {day_text(d)}"),
    _rule(r"\byesterday\b", lambda m, d: f"on {day_text(d - timedelta(days=1))}"),
    _rule(r"\btomorrow\b", lambda m, d: f"on {day_text(d + timedelta(days=1))}"),
    _rule(
        rf"\b(?:(early|late) )?(?:on |last )?({_DAY})\b(?!,? ?(?:\d|{_MONTH}))",
        lambda m, d: (f"{m[1]} " if m[1] else "") + f"on {day_text(_weekday_before(d, m[2]))}",
    ),
    _rule(r"\brecently\b", lambda m, d: f"shortly before {day_text(d)}"),
    # "a recent survey" asked on 1 July -> "a June 2022 survey": the month two weeks before.
    _rule(r"\brecent\b", lambda m, d: _month_text(d - timedelta(days=14))),
    _rule(r"\b(?:right now|currently|now)\b", lambda m, d: f"as of {day_text(d)}"),
]


def explicit_dates(question: str, asked: date) -> str:
    """``question`` with its relative time words replaced by dates computed from ``asked``.

    Weeks start on Monday; a weekday names the last one on or before ``asked``. A question
    without such words comes back unchanged.

    >>> explicit_dates("What did Biden announce on Wednesday?", date(2022, 8, 25))
    'What did Biden announce on 24 August 2022?'
    >>> explicit_dates("Which show was recently renewed?", date(2022, 6, 16))
    'Which show was shortly before 16 June 2022 renewed?'
    >>> explicit_dates("Where is Mar-a-Lago?", date(2022, 8, 12))
    'Where is Mar-a-Lago?'
    """
    text = question
    for pattern, make in _RULES:
        text = pattern.sub(_replacer(make, asked), text)
    return text


def _replacer(
    make: Callable[[re.Match[str], date], str], asked: date
) -> Callable[[re.Match[str]], str]:
    return lambda match: make(match, asked)


def has_time_words(question: str) -> bool:
    """Whether ``question`` holds a relative time word that :func:`explicit_dates` rewrites.

    >>> has_time_words("Who resigned this week?"), has_time_words("Where is Mar-a-Lago?")
    (True, False)
    """
    return any(pattern.search(question) for pattern, _ in _RULES)
