"""Date expressions in questions ("in June 2022", "last week", "since March"), resolved
against the date the question is asked into the window of articles to search.

dateparser finds and reads the expressions; this module decides which of its finds are
really about time (it also reads "may" the verb, "the sun" and "2000 people" as dates)
and turns each into a window of publication dates.

Two kinds of window:

- **strict**: the question names a calendar span ("in June 2022", "in 2018", "since
  March", "before 1 May 2022"): only articles published in it are searched.
- **preferred**: the question names a span relative to its date ("this week", "last
  week", "yesterday", "on Wednesday"): articles in it are preferred, not required, since
  news of a Wednesday is often published on Thursday and a question's "this week" is
  looser than a calendar week.
"""

from __future__ import annotations

import calendar
import functools
import logging
import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from rag.records import Answer, DateWindow
from rag.text import STOPWORDS

if TYPE_CHECKING:
    from dateparser.date import DateDataParser

logger = logging.getLogger(__name__)

_MONTHS = [m.lower() for m in calendar.month_name[1:]]
_MONTH_ABBR = [m.lower() for m in calendar.month_abbr[1:]] + ["sept"]
_WEEKDAYS = [d.lower() for d in calendar.day_name]
# Month names that are also everyday words: only a month next to a preposition or a
# number ("in May", "since March", "May 3") counts ("may the Fed...", "march on").
_AMBIGUOUS_MONTHS = frozenset({"may", "march", "august"})
_LEAD_WORDS = frozenset(
    "in on since before after until till by during from of early late mid this last past "
    "previous next between through".split()
)
# A date after these words bounds what is searched ("in June 2022", "since March").
_STRICT_LEADS = frozenset("in on since before after until till during between through".split())
# ... and after these it describes a thing ("a card from 1952", "the high of June").
_DESCRIBING = frozenset({"of", "from"})
_SINCE = frozenset({"since", "after"})
_BEFORE = frozenset({"before", "until", "till", "by"})
# A cheap first look: questions without any of these words name no date, and skip the
# parser (which would otherwise read "the sun" as Sunday).
_TIME_WORD = re.compile(
    r"\b(" + "|".join(_MONTHS + _MONTH_ABBR + _WEEKDAYS) + r"|(?:1[89]|20)\d\d|today|"
    r"yesterday|weeks?|months?|years?|days?)\b",
    re.IGNORECASE,
)
# "the past two weeks", "the last 10 days": a span ending at the as-of, read here because
# dateparser reads it as one day ("two weeks ago").
_NUMBER_WORDS = {
    "a": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_PAST_SPAN = re.compile(
    r"\b(?:in\s+|over\s+|during\s+)?(?:the\s+)?(?:past|last)\s+(\d{1,3}|"
    + "|".join(_NUMBER_WORDS)
    + r")\s+(day|week|month)s?\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"^(?:1[89]|20)\d\d$")
# A question about something still to come: its dates name the event, not the news.
_FUTURE = re.compile(
    r"\b(will|(?:expected|scheduled|due|poised|slated|planning|plans?) to|upcoming|later)\b",
    re.IGNORECASE,
)
# "(in) the week of 13 June 2022" / "the week of June 13, 2022".
_WEEK_OF = re.compile(
    r"\b((?:in|during)\s+)?the\s+week\s+of\s+((?:\d{1,2}(?:st|nd|rd|th)?\s+)?(?:"
    + "|".join(_MONTHS + _MONTH_ABBR)
    + r")\.?(?:\s+\d{1,2}(?:st|nd|rd|th)?(?!\d))?,?(?:\s+(?:1[89]|20)\d\d)?)",
    re.IGNORECASE,
)
_PLURAL_NOUN = re.compile(r"^[a-z]+s$")


def _strip_trailing(span: str) -> str:
    """dateparser's spans may end in a stray word ("this week in"): keep the date part."""
    words = span.split()
    while len(words) > 1 and words[-1].lower().strip(",.?!") in _LEAD_WORDS | {"the", "and"}:
        words.pop()
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def _parser_module() -> Any:
    # Imported lazily: dateparser loads its language data on import (~0.2 s).
    import dateparser.search

    return dateparser.search


def _settings(as_of: date) -> dict[str, Any]:
    return {
        "RELATIVE_BASE": datetime(as_of.year, as_of.month, as_of.day),
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_DAY_OF_MONTH": "first",
    }


@functools.lru_cache(maxsize=64)
def _date_parser(as_of: date) -> DateDataParser:
    from dateparser.date import DateDataParser

    return DateDataParser(languages=["en"], settings=_settings(as_of))


@functools.lru_cache(maxsize=1024)  # search and answer of one question both ask
def resolve_window(question: str, as_of: date) -> DateWindow | None:
    """The publication window named by a date expression in ``question``, if any.

    Relative expressions are read against ``as_of``; a date that cannot be resolved
    ("before the election") gives None, as does a question with no date at all.

    >>> w = resolve_window("How much did the Fed raise rates in June 2022?", date(2026, 1, 5))
    >>> w.start, w.end, w.strict, w.label
    (datetime.date(2022, 6, 1), datetime.date(2022, 6, 30), True, 'articles from June 2022')
    >>> resolve_window("What happened last week?", date(2022, 6, 24)).label
    'articles from 13-19 June 2022 first'
    >>> resolve_window("May the Fed raise rates again?", date(2022, 6, 24)) is None
    True
    """
    if not _TIME_WORD.search(question):
        return None
    past = _PAST_SPAN.search(question)
    if past:
        return _past_span(past, as_of)
    week_of = _WEEK_OF.search(question)
    if week_of:
        window = _week_of(week_of, as_of)
        if window is not None:
            return window
    windows: list[DateWindow] = []
    for span, offset in _found(question, as_of):
        window = _window(question, span, offset, as_of)
        if window and all((w.start, w.end) != (window.start, window.end) for w in windows):
            windows.append(window)  # a date said twice is one window
    if not windows:
        return None
    if len(windows) == 1:
        return windows[0]
    # "between March and June 2022": the span covering all of them.
    start_dates = [w.start for w in windows]
    start = None if None in start_dates else min(d for d in start_dates if d is not None)
    end = max(w.end for w in windows)
    strict = windows[0].strict  # "between March and June 2022": the first has the lead
    phrase = " … ".join(w.phrase for w in windows)
    return DateWindow(start, end, _label(start, end, strict), phrase, strict)


def month_without_year(window: DateWindow) -> bool:
    """Whether ``window`` comes from a month named without a year ("the Fed's June rate
    hike", "since March", "on 15 June"): its year is the as-of's only because nothing
    said otherwise, so an archive's latest such month may be the one meant.

    >>> month_without_year(resolve_window("the June rate hike?", date(2026, 12, 8)))
    True
    >>> month_without_year(resolve_window("the hike in June 2022?", date(2026, 12, 8)))
    False
    >>> month_without_year(resolve_window("what happened last week?", date(2026, 12, 8)))
    False
    """
    words = _tokens(window.phrase)
    named = any(w in _MONTHS or w in _MONTH_ABBR for w in words)
    return named and not any(_YEAR.match(w) for w in words)


def _found(question: str, as_of: date) -> list[tuple[str, int]]:
    """(span, offset) of each date expression dateparser finds in ``question``."""
    try:
        found = _parser_module().search_dates(question, languages=["en"], settings=_settings(as_of))
    except Exception:  # dateparser raises on odd input; a question without a date is fine
        logger.debug("dateparser failed on %r", question, exc_info=True)
        return []
    spans: list[tuple[str, int]] = []
    cursor = 0
    for span, _ in found or []:
        offset = question.find(span, cursor)
        if offset < 0:
            offset = question.find(span)
        cursor = max(cursor, offset + len(span))
        start, end = _grow(question, offset, offset + len(_strip_trailing(span)))
        grown = (question[start:end], start)
        if grown not in spans:
            spans.append(grown)
    return spans


def _grow(question: str, start: int, end: int) -> tuple[int, int]:
    """Widen a find over the day numbers, months and years next to it.

    dateparser reads "before 1 May 2022" as two finds, "May" and "2022"; widened, both
    are "1 May 2022".
    """
    tokens = [(m.start(), m.end(), m.group(0).lower()) for m in re.finditer(r"[\w']+", question)]

    def month(word: str) -> bool:
        return word in _MONTHS or word in _MONTH_ABBR

    def datish(word: str, neighbour: str) -> bool:
        # A day number belongs to the date only next to a month ("1 May", "May 3").
        if re.fullmatch(r"\d{1,2}(st|nd|rd|th)?", word):
            return month(neighbour)
        return bool(_YEAR.match(word) or month(word))

    inside = [i for i, (s, e, _) in enumerate(tokens) if s < end and e > start]
    if not inside:
        return start, end
    first, last = inside[0], inside[-1]
    while first > 0 and datish(tokens[first - 1][2], tokens[first][2]):
        first -= 1
    while last + 1 < len(tokens) and datish(tokens[last + 1][2], tokens[last][2]):
        last += 1
    return min(start, tokens[first][0]), max(end, tokens[last][1])


def _tokens(span: str) -> list[str]:
    """The words of a date expression, lowercased, without punctuation around them."""
    return [t.lower().strip(",.?!;:'’\"()") for t in span.split()]


def _window(question: str, span: str, offset: int, as_of: date) -> DateWindow | None:
    tokens = _tokens(span)
    before_words = re.findall(r"[\w']+", question[:offset].lower())
    lead = before_words[-1] if before_words else ""
    after_words = re.findall(r"[\w']+", question[offset + len(span) :].lower())
    following = after_words[0] if after_words else ""
    if tokens and tokens[0] in _LEAD_WORDS:
        lead = tokens[0]
    as_of_phrase = lead == "of" and before_words[-1:] == ["as"]
    if as_of_phrase:
        lead = "until"  # "as of 4 August 2022": the news up to that day
    if lead in _DESCRIBING or not _is_date(tokens, lead, following):
        return None
    text = " ".join(t for t in span.split() if t.lower() not in _LEAD_WORDS - {"last", "this"})
    data = _date_parser(as_of).get_date_data(text or span)
    if data is None or data.date_obj is None:
        return None
    day = data.date_obj.date()
    if any(t in _WEEKDAYS for t in tokens) and day == as_of - timedelta(days=7):
        day = as_of  # "early Thursday" asked on a Thursday is that day, not a week before
    period = data.period or "day"
    first, end = _span(day, period)
    start: date | None = first
    absolute = any(t in _MONTHS or t in _MONTH_ABBR or _YEAR.match(t) for t in tokens)
    # A month or a year bounds what is searched. A day does not: the news of a day is
    # published that day and the days after ("the riot on January 6, 2021" asked in 2022
    # is answered by the hearings' coverage), so its articles are preferred instead.
    bounded = lead in _SINCE | _BEFORE or period != "day"
    strict = absolute and lead in _STRICT_LEADS and bounded
    if strict and lead not in _SINCE | _BEFORE and _FUTURE.search(question):
        # "Apple is expected to unveil ... in September 2022": the date is the event's,
        # and its news is published before it: the month before is preferred too.
        strict, first = False, first - timedelta(days=31)
        start = first
    if lead in _SINCE:
        start, end = (first if lead == "since" else end + timedelta(1)), as_of
    elif lead in _BEFORE:
        start, end = None, (first - timedelta(1) if lead == "before" else end)
    end = min(end, as_of)
    if start is not None and start > end:
        return None  # a date after the as-of: nothing can have been published in it
    phrase = span if lead in tokens[:1] or lead not in _LEAD_WORDS else f"{lead} {span}"
    if as_of_phrase:
        phrase = f"as {span}"
    return DateWindow(start, end, _label(start, end, strict), phrase.strip(), strict)


def _is_date(tokens: list[str], lead: str, following: str) -> bool:
    """Whether a dateparser find is about time, not a verb, a name or a count."""
    words = [t for t in tokens if t and t not in _LEAD_WORDS | {"the", "of", "a"}]
    if not words:
        return False
    has_number = any(t.isdigit() for t in words)
    named = False
    for word in words:
        if word in _WEEKDAYS or word in {"today", "yesterday"}:
            named = True
        elif word in _MONTHS:
            if word in _AMBIGUOUS_MONTHS and not (lead in _LEAD_WORDS or has_number):
                return False
            named = True
        elif word in _MONTH_ABBR:
            if not has_number:  # "Jan said", "mar": a name or a fragment, not a month
                return False
            named = True
        elif _YEAR.match(word):
            # A number is a year after a preposition or with a month, and not when it
            # qualifies the next word ("2000 people", "the 2020 presidential election").
            if not (lead in _LEAD_WORDS or len(words) > 1):
                return False
            # After a bounding preposition the date is a time even when a word
            # follows ("shortly before 16 June 2022 green lit").
            if (
                word == words[-1]
                and following.isalpha()
                and following not in STOPWORDS
                and lead not in _STRICT_LEADS
            ):
                return False
            named = True
        elif word in {"week", "month", "year"} and any(
            t in {"last", "this", "past", "previous"} for t in tokens
        ):
            named = True
        elif word == "ago" and any(t in {"day", "days", "week", "weeks"} for t in tokens):
            named = True  # "a year ago" compares with the past; "3 days ago" is a window
    return named


def _span(day: date, period: str) -> tuple[date, date]:
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    if period == "month":
        last = calendar.monthrange(day.year, day.month)[1]
        return day.replace(day=1), day.replace(day=last)
    if period == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    return day, day


def _week_of(match: re.Match[str], as_of: date) -> DateWindow | None:
    """ "in the week of 13 June 2022": that Monday-to-Sunday week, preferred (dateparser
    finds no date in the phrase)."""
    data = _date_parser(as_of).get_date_data(match.group(2))
    if data is None or data.date_obj is None:
        return None
    start, end = _span(data.date_obj.date(), "week")
    end = min(end, as_of)
    if start > end:
        return None
    return DateWindow(start, end, _label(start, end, False), match.group(0).strip(), False)


def _past_span(match: re.Match[str], as_of: date) -> DateWindow:
    count_text, unit = match.group(1).lower(), match.group(2).lower()
    count = int(count_text) if count_text.isdigit() else _NUMBER_WORDS[count_text]
    days = {"day": 1, "week": 7, "month": 30}[unit] * count
    start = as_of - timedelta(days=days - 1)
    return DateWindow(start, as_of, _label(start, as_of, False), match.group(0).strip(), False)


def _label(start: date | None, end: date, strict: bool) -> str:
    """How the window is shown under an answer.

    >>> _label(date(2022, 6, 13), date(2022, 6, 19), True)
    'articles from 13-19 June 2022'
    >>> _label(None, date(2022, 5, 31), True)
    'articles up to 31 May 2022'
    """
    text = f"articles {format_range(start, end)}"
    return text if strict else f"{text} first"


def format_range(start: date | None, end: date) -> str:
    """A date range in words, as short as it stays exact.

    >>> format_range(date(2022, 6, 1), date(2022, 6, 30))
    'from June 2022'
    >>> format_range(date(2022, 3, 1), date(2022, 6, 17))
    'from 1 March to 17 June 2022'
    >>> format_range(date(2018, 1, 1), date(2018, 12, 31))
    'from 2018'
    """
    if start is None:
        return f"up to {format_day(end)}"
    if start == end:
        return f"from {format_day(end)}"
    last_of_month = calendar.monthrange(end.year, end.month)[1]
    if start == date(start.year, 1, 1) and end == date(start.year, 12, 31):
        return f"from {start.year}"
    if (start.year, start.month) == (end.year, end.month):
        if start.day == 1 and end.day == last_of_month:
            return f"from {calendar.month_name[end.month]} {end.year}"
        return f"from {start.day}-{format_day(end)}"
    if start.year == end.year:
        return f"from {start.day} {calendar.month_name[start.month]} to {format_day(end)}"
    return f"from {format_day(start)} to {format_day(end)}"


def format_day(day: date) -> str:
    """``15 June 2022``.

    >>> format_day(date(2022, 6, 15))
    '15 June 2022'
    """
    return f"{day.day} {calendar.month_name[day.month]} {day.year}"


def answer_when(answer: Answer) -> str:
    """The as-of and window line shown under an answer.

    >>> from rag.records import DateWindow
    >>> w = DateWindow(date(2022, 6, 13), date(2022, 6, 19), "articles from 13-19 June 2022")
    >>> answer_when(Answer("q", "t", as_of=date(2022, 6, 24), window=w))
    'As of 24 June 2022 · searched articles from 13-19 June 2022'
    """
    if answer.as_of is None:
        return ""
    line = f"As of {format_day(answer.as_of)}"
    if answer.window is not None:
        line += f" · searched {answer.window.label}"
    return line
