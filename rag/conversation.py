"""Conversations: turn a question that leans on earlier turns into one retrieval can use.

A chat question is either complete ("what did Meloni propose?", however short, and
whatever was asked before) or a follow-up that only makes sense with the previous turn
("and what did Powell say about it?", "what about Germany?", "who won?"). Retrieval needs
the follow-up's missing topic; a complete question must be searched alone, or the
previous topic drowns it.

Without an LLM, :func:`follow_up_reason` decides from linguistic signals: an elliptical
opener, a pronoun with nothing in the question it could refer to, a demonstrative, or
no topic of its own (no name and at most one topic word). A follow-up then borrows the
previous turn's (resolved) question and the names its answer gave. With an LLM
configured, :class:`QuestionRewriter` has the model write the standalone question
(LangChain's history-aware retrieval pattern), with the rule as the fallback.

Long, chatty questions (greetings, context, then the question) are focused too: see
:func:`focus_question`.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.text import STOPWORDS, split_sentences, stem, words

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable

logger = logging.getLogger(__name__)

History = Sequence[tuple[str, str]]

MAX_HISTORY_TURNS = 2  # follow-ups lean on the last turn; two allow a chain of them
MAX_HISTORY_QUESTION_CHARS = 300
MAX_HISTORY_ANSWER_CHARS = 600
MAX_FOCUS_CHARS = 300  # a question longer than this is focused on its last question
MAX_QUERY_CHARS = 600  # what a rewritten or borrowed query may grow to
MAX_ANSWER_NAMES = 4  # names borrowed from the previous answer
MAX_SCENE_NAMES = 8  # names kept from the context before a long question's question

# Words that ask but name no topic: "who won?", "how much did it cost?", "what happened?".
_LIGHT = frozenset(
    """happen happened happening think thought mean meant cost costs win won wins lose lost
    go went gone come came take took taken make made do done work look know known tell
    explain explained detail details reason reasons result results outcome next more else
    why much many long old big thing things anything something someone somebody everything
    exactly actually really then now later first happen happens react reacted respond
    responded response reply replied answer answered decide decided decision plan plans
    kind sort type way like want wanted need needed people person""".split()
)
# Generic heads that, after "the", point back to something named earlier ("the company").
_GENERIC = frozenset(
    """company firm country nation government president leader minister official officials
    team race game match event deal agreement bill law plan proposal case trial report
    agency group party city state storm attack suspect victim court vote election
    announcement decision move policy program project study issue story article winner
    book film movie show song album device product meeting summit""".split()
)
_TIME_NOUNS = frozenset(
    """week weekend month year day morning afternoon evening night time season summer
    winter spring fall autumn decade century quarter""".split()
)
_EXPLETIVE = frozenset(
    "true possible likely unlikely clear expected known official confirmed illegal".split()
)
_OBJECT_PRONOUNS = frozenset({"it", "them", "him", "her"})
_POSSESSIVES = frozenset({"his", "her", "its", "their", "hers", "theirs"})
_PRONOUN_KIND = {
    **dict.fromkeys(["he", "she", "him", "his", "her", "hers"], "person"),
    **dict.fromkeys(["it", "its"], "thing"),
    **dict.fromkeys(["they", "them", "their", "theirs"], "plural"),
}
# Words that open a new clause: a pronoun after one may refer to a noun before it.
_CLAUSE_WORDS = frozenset(
    """said say says saying told tell tells announced announces claimed claims think
    thinks thought believe believes believed expect expects expected hope hopes hoped
    want wants wanted after before when while because since that who which whom whose
    as if and but where until although though whether once""".split()
)
_PERSON_NOUNS = frozenset(
    """person man woman boy girl child president leader minister senator governor mayor
    official player star singer actor actress rapper comedian author writer director
    host anchor ceo founder billionaire candidate judge king queen prince princess pope
    officer soldier athlete coach driver pilot astronaut suspect victim lawmaker
    prosecutor lawyer spokesman spokeswoman pundit celebrity chef artist musician
    champion scientist doctor nurse teacher student head chief secretary chancellor premier
    general commander chairman chairwoman executive boss heir""".split()
)
_WH_WORDS = frozenset("what who whom whose when where why how which".split())
_DEMONSTRATIVES = frozenset({"this", "that", "these", "those"})
_PREPOSITIONS = frozenset(
    """about of for to with on from at by against into over after before behind than
    toward towards regarding""".split()
)
_OPENER = re.compile(
    r"^\s*(and|but|also|so|then|plus|or|what about|how about|what of|what else|"
    r"anything else|tell me more|more about|more on|same for|and also|why not|"
    r"is that|was that|why|how come|really)\b",
    re.IGNORECASE,
)
_SUBSTITUTION = re.compile(r"^\s*(and|what about|how about|what of|and what about)\b\s*", re.I)
_MARKER = re.compile(
    r"\b(else|instead|the same|as well|the latter|the former|mentioned|either|"
    r"the other one|previous(ly)?|earlier one)\b|\btoo\s*\W*$|\bagain\s*\W*$",
    re.IGNORECASE,
)
_WH_START = re.compile(
    r"\b(what|who|whom|whose|when|where|why|how|which|did|does|do|is|are|was|were|can|"
    r"could|will|would|should|has|have)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"^\s*(can you|could you|would you|please|tell me|explain|i want to know|i'd like to "
    r"know|i would like to know|i wonder|do you know|my question is|so my question)",
    re.IGNORECASE,
)
_DISCOURSE = re.compile(r"^((so|anyway|ok|okay|well|now|basically|then)\b[,;]?\s+)+", re.I)
_TOKEN = re.compile(r"[^\W_]+(?:['’.][^\W_]+)*\.?|[^\w\s]", re.UNICODE)
_MARKERS = re.compile(r"\s*\[\d{1,3}\]")


@dataclass(frozen=True)
class Resolution:
    """How a question was read: ``query`` is what retrieval searches for.

    ``focus`` is the part of the question the answer is scored against (the question
    itself unless it was long and chatty); ``reason`` says why it was or was not
    treated as a follow-up (for logs, tests and the measurement script).
    """

    question: str
    focus: str
    query: str
    follow_up: bool = False
    reason: str = "complete"


def trim_history(history: History) -> list[tuple[str, str]]:
    """The last turns, each question and answer cut to a sane length.

    A 2,000-character previous question or a long answer would otherwise swamp the
    next query (and the LLM prompt).

    >>> trim_history([("q1", "a1"), ("q2", "a2"), ("q3", "x" * 5000)])[-1][1][-3:]
    'xx…'
    >>> len(trim_history([("q1", "a1"), ("q2", "a2"), ("q3", "a3")]))
    2
    """
    turns = list(history)[-MAX_HISTORY_TURNS:]
    return [
        (_cut(focus_question(q), MAX_HISTORY_QUESTION_CHARS), _cut(a, MAX_HISTORY_ANSWER_CHARS))
        for q, a in turns
    ]


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"


def focus_question(question: str) -> str:
    """The informative part of a long, chatty question: its last question sentence.

    A greeting and paragraphs of context before the question spread the answer's term
    weights over words the answer does not need. Short questions are returned as is;
    a long one keeps its last sentence that asks (ends with "?" or makes a request),
    or its tail from the last question word when it has no punctuation.

    >>> focus_question("what did Meloni propose?")
    'what did Meloni propose?'
    >>> chatty = "Hello! " + "I have been following the news from Europe a lot. " * 8
    >>> focus_question(chatty + "Anyway, what did Meloni propose about Ukraine? Thanks!")
    'what did Meloni propose about Ukraine?'
    """
    question = " ".join(question.split())
    if len(question) <= MAX_FOCUS_CHARS:
        return question
    spans = split_sentences(question)
    sentences = [question[s:e] for s, e in spans]
    asking = [s for s in sentences if s.rstrip("\"'”’) ").endswith("?") or _REQUEST.match(s)]
    focus = asking[-1] if asking else (sentences[-1] if sentences else question)
    if len(focus) > MAX_FOCUS_CHARS:
        starts = [m.start() for m in _WH_START.finditer(focus)]
        tail = next(
            (focus[i:] for i in reversed(starts) if len(focus[i:].split()) >= 3),
            focus[-MAX_FOCUS_CHARS:],
        )
        focus = _cut(tail[-MAX_FOCUS_CHARS * 2 :], MAX_FOCUS_CHARS)
    # "So, to get to the point, my question is: what did ...?" -> "what did ...?"
    lead_in = focus.rsplit(":", 1)
    if len(lead_in) == 2 and len(lead_in[1].split()) >= 3:
        focus = lead_in[1]
    return _DISCOURSE.sub("", focus.strip()) or focus.strip()


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _is_name(token: str, first: bool) -> bool:
    """A capitalized word not opening the sentence, an acronym, or a number ("2022")."""
    if token[0].isdigit():
        return True
    if not token[0].isalpha():
        return False
    bare = token.rstrip(".")
    if len(bare) > 1 and bare.isupper():
        return bare.lower() not in ("i",)
    if first or not token[0].isupper():
        return any(ch.isupper() for ch in bare[1:])  # "iPhone", "eBay"
    return bare.lower() not in STOPWORDS


def names(text: str) -> list[str]:
    """Names in ``text``: capitalized words past a sentence start, acronyms and numbers.

    >>> names("What did Powell say about the Fed's June hike in 2022?")
    ['Powell', "Fed's", 'June', '2022']
    """
    found = []
    first = True
    for token in _tokens(text):
        if not token[0].isalnum():
            first = token in '.!?:;"“”'
            continue
        if _is_name(token, first):
            found.append(token)
        first = False
    return found


def topic_terms(text: str) -> list[str]:
    """Stemmed content words that name a topic (not "won", "cost", "happened")."""
    return [
        stem(w)
        for w in words(text)
        if w not in STOPWORDS and w not in _LIGHT and len(w) > 1 and not w.isdigit()
    ]


def follow_up_reason(question: str) -> str | None:
    """Why ``question`` cannot be understood without the previous turn, or None.

    >>> follow_up_reason("what did Meloni propose?") is None
    True
    >>> follow_up_reason("and what did Powell say about it?")
    "opens with 'and'"
    >>> follow_up_reason("How much did it cost?")
    "'it' has nothing to refer to"
    >>> follow_up_reason("who won?")
    'no topic of its own'
    """
    text = " ".join(question.split())
    opener = _OPENER.match(text)
    if opener:
        word = opener.group(1).lower()
        # "why did Meloni propose it?" starts like a follow-up but may stand alone.
        if word not in ("why", "how come", "really") or _anaphor(text) or not _has_topic(text):
            return f"opens with {word!r}"
    anaphor = _anaphor(text)
    if anaphor and not _sets_the_scene(text):
        return f"{anaphor!r} has nothing to refer to"
    generic = _generic_reference(text)
    if generic:
        return f"{generic!r} refers to something named before"
    marker = _MARKER.search(text)
    if marker:
        return f"{marker.group(0).strip()!r} refers to something said before"
    if not _has_topic(text):
        return "no topic of its own"
    return None


def _sets_the_scene(text: str) -> bool:
    """Whether sentences before the last one name a topic the question's pronouns can
    refer to: "A record python was caught in Florida. Which animal was it?"."""
    spans = split_sentences(text)
    return len(spans) > 1 and _has_topic(text[: spans[-1][0]])


def _has_topic(text: str) -> bool:
    """A name, or two topic words: "who won the race?" has one, so it leans on context."""
    if names(text):
        return True
    return len(set(topic_terms(text))) >= 2


def _anaphor(text: str) -> str | None:
    """The first pronoun or demonstrative in ``text`` with no antecedent inside it.

    Three facts of English grammar decide, without a parser:

    - a pronoun object ("about it", "to them") never refers to the subject of its own
      clause, so at the end of a question or after a preposition it points outside;
    - a subject pronoun refers back only across a clause boundary: "Which company said
      it would ..." (after "said"), "... after he signed" (after "after"); in "Which team
      did he play for?" the team cannot be "he";
    - it agrees: "he"/"she" need a person (a name or a word such as "player"), "it" a
      thing, "they" anything; a possessive ("her plan") may refer to its own clause's
      subject ("Why did Meloni change her mind?").
    """
    tokens = [t for t in _tokens(text) if t[0].isalnum() or t in "?!.,;:"]
    lowered = [t.lower().rstrip(".") for t in tokens]
    available: set[str] = set()  # antecedent kinds in a clause before this one
    pending: set[str] = set()  # antecedent kinds in the current clause
    first = True
    for i, (token, word) in enumerate(zip(tokens, lowered, strict=True)):
        if not token[0].isalnum():
            first = token in "?!."
            available |= pending
            continue
        following = lowered[i + 1] if i + 1 < len(lowered) else "?"
        previous = lowered[i - 1] if i > 0 else ""
        at_end = not following[0].isalnum()
        before_noun = following[0].isalpha() and following not in STOPWORDS
        kind = _PRONOUN_KIND.get(word)
        if word in _DEMONSTRATIVES:
            if following in _TIME_NOUNS:
                pass  # "this week"
            elif word == "that" and not (first or at_end or previous in _PREPOSITIONS):
                pass  # "said that ...", "the deal that ..."
            elif at_end or before_noun or following in ("is", "was", "mean", "means"):
                return word  # "about that?", "this proposal", "is this true?"
        elif word == "there" and at_end:
            return word
        elif kind is not None:
            possessive = word in _POSSESSIVES and (word != "her" or before_noun)
            if possessive:
                if kind not in available | pending:
                    return word  # "her detention" with no woman named
            elif word in _OBJECT_PRONOUNS and (at_end or previous in _PREPOSITIONS):
                return word  # "about it", "to them": never the subject of its own clause
            elif kind not in available and not (word == "it" and following in _EXPLETIVE):
                return word  # "did he ...", "are they ...": nothing in a clause before
        elif word in _CLAUSE_WORDS:
            available |= pending
        else:
            pending |= _antecedent_kinds(token, word, first)
        first = False
    return None


def _antecedent_kinds(token: str, word: str, first: bool) -> set[str]:
    """What a word could be the antecedent of: a person, a thing, a plural."""
    if word in STOPWORDS or word in _LIGHT or word in _PREPOSITIONS or len(word) < 2:
        return set()
    if word in _PERSON_NOUNS or word.rstrip("s") in _PERSON_NOUNS:
        return {"person", "plural"}
    capitalized = token[0].isupper() and (not first or word not in _WH_WORDS)
    plural = word.endswith("s") and not word.endswith(("ss", "'s", "’s"))
    if capitalized and plural and not token.isupper():
        return {"plural"}  # "Americans", "Democrats": not a "he"
    if capitalized:
        return {"person", "thing", "plural"}  # "Meloni", "Apple": either
    return {"thing", "plural"}


def _generic_reference(text: str) -> str | None:
    """ "the company", "the race": a definite generic noun and nothing else to go on."""
    lowered = list(words(text))
    if names(text):
        return None
    for word, following in itertools.pairwise(lowered):
        if word == "the" and following in _GENERIC:
            others = set(topic_terms(text)) - {stem(following)}
            if len(others) < 2:
                return f"the {following}"
    return None


def answer_names(answer: str) -> list[str]:
    """Names an earlier answer gave (a follow-up's "he" may be one of them).

    >>> answer_names("Sergio Perez won the Monaco Grand Prix [1].")
    ['Sergio', 'Perez', 'Monaco', 'Grand']
    >>> answer_names("Not found in the ingested articles: none of them supports an answer.")
    []
    """
    text = _MARKERS.sub("", answer)
    if not text or text.lower().startswith(("not found", "⚠")):
        return []
    unique: list[str] = []
    first = True
    tokens = _tokens(text)
    for i, token in enumerate(tokens):
        if not token[0].isalnum():
            first = token in '.!?:;"“”'
            continue
        bare = token.rstrip(".").removesuffix("'s").removesuffix("’s")
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        # A capital opening a sentence is a name when a capitalized word follows it.
        named = not first or bare.isupper() or following[:1].isupper()
        if token[0].isupper() and named and bare.lower() not in STOPWORDS and bare not in unique:
            unique.append(bare)
        first = False
    return unique[:MAX_ANSWER_NAMES]


def rule_query(question: str, history: History) -> Resolution:
    """Resolve ``question`` against ``history`` without an LLM.

    >>> rule_query("what did Meloni propose?", [("Why is Internet Explorer retired?", "…")]).query
    'what did Meloni propose?'
    >>> fed = [("How much did the Fed raise rates?", "")]
    >>> rule_query("and what did Powell say about it?", fed).query
    'How much did the Fed raise rates? and what did Powell say about it?'
    >>> rule_query("what about Germany?", [("How much did France spend on defense?", "")]).query
    'How much did spend on defense? what about Germany?'
    """
    turns = trim_history(history)
    text = " ".join(question.split())
    focus = focus_question(text)
    # A long message: what comes before its question sets the scene, by its names (the
    # chatty rest would only blur the query): "Alex Jones was in court this week for
    # ... Which topic is at the center of the lawsuits?" needs "Alex Jones".
    before = text[: text.rfind(focus)] if focus != text else ""
    scene = [n for n in dict.fromkeys(names(before)) if n not in focus][:MAX_SCENE_NAMES]
    reason = follow_up_reason(focus)
    if reason is not None and turns and not scene:
        return Resolution(
            question, focus, _from_history(focus, turns), follow_up=True, reason=reason
        )
    if scene:
        query = _cut(" ".join([*scene, focus]), MAX_QUERY_CHARS)
        why = reason or "a long question: its question sentence and the names before it"
        return Resolution(question, focus, query, follow_up=reason is not None, reason=why)
    return Resolution(question, focus, focus, follow_up=False, reason=reason or "complete")


def _from_history(focus: str, turns: list[tuple[str, str]]) -> str:
    """A follow-up with the previous turn's topic: its question and its answer's names."""
    previous = _standalone(turns)
    borrowed = [n for n in answer_names(turns[-1][1]) if n not in previous]
    opener = _SUBSTITUTION.match(focus)
    rest = focus[opener.end() :] if opener else ""
    if opener and names(focus) and not _WH_START.search(rest) and len(rest.split()) <= 5:
        # "what about Germany?": the new name replaces the old ones.
        previous = _without_names(previous)
        borrowed = []
    return _cut(" ".join([previous, *borrowed, focus]), MAX_QUERY_CHARS)


def _standalone(turns: list[tuple[str, str]]) -> str:
    """The previous question made standalone by the same rule (a chain of follow-ups)."""
    previous = turns[-1][0]
    if len(turns) > 1 and follow_up_reason(previous) is not None:
        return rule_query(previous, turns[:-1]).query
    return previous


def _without_names(text: str) -> str:
    keep = []
    first = True
    for token in text.split():
        bare = token.strip("\"'“”‘’?!.,;:()")
        if bare and _is_name(bare, first) and not bare[0].isdigit():
            first = False
            continue
        keep.append(token)
        first = token.endswith((".", "?", "!"))
    return " ".join(keep)


REWRITE_SYSTEM_PROMPT = """Given a chat history and the latest user question, which \
might refer to the chat history, write a standalone question that can be understood \
without the chat history: replace pronouns and elliptical phrases with what they refer \
to. If the latest question is already complete on its own, return it unchanged, even if \
it is short or about a different topic. Do NOT answer the question. Reply with the \
question only, on one line."""


def build_rewrite_chain(model: BaseChatModel) -> Runnable[dict[str, object], str]:
    """LangChain's history-aware pattern: a prompt with the history, the model, a string.

    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> chain = build_rewrite_chain(FakeListChatModel(responses=["What did Powell say?"]))
    >>> chain.invoke({"chat_history": [], "input": "and Powell?"})
    'What did Powell say?'
    """
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", REWRITE_SYSTEM_PROMPT),
            MessagesPlaceholder("chat_history"),
            ("human", "{input}"),
        ]
    )
    return prompt | model | StrOutputParser()


class QuestionRewriter:
    """Has a chat model write the standalone question of a follow-up.

    The model's reply is cleaned to one line; an empty reply or a failing model falls
    back to :func:`rule_query`, so a flaky LLM never leaves the chat without a query.

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> model = FakeListChatModel(responses=["What did Powell say about the June hike?"])
        >>> history = [("How much did the Fed raise rates in June?", "0.75 points [1]")]
        >>> QuestionRewriter(model).resolve("and what did Powell say?", history).query
        'What did Powell say about the June hike?'
    """

    def __init__(self, model: BaseChatModel) -> None:
        self.chain = build_rewrite_chain(model)

    def resolve(self, question: str, history: History) -> Resolution:
        turns = trim_history(history)
        focus = focus_question(question)
        if not turns:
            return rule_query(question, ())
        from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

        messages: list[BaseMessage] = []
        for q, a in turns:
            messages += [HumanMessage(q), AIMessage(_MARKERS.sub("", a))]
        try:
            reply = self.chain.invoke({"chat_history": messages, "input": focus})
        except Exception:
            logger.warning("the LLM could not rewrite %r; using the rule", focus, exc_info=True)
            return rule_query(question, history)
        rewritten = _clean_rewrite(reply)
        if not rewritten:
            return rule_query(question, history)
        follow_up = rewritten.lower() != focus.lower()
        reason = "rewritten by the LLM" if follow_up else "complete (LLM)"
        return Resolution(question, focus, rewritten, follow_up=follow_up, reason=reason)


def _clean_rewrite(reply: str) -> str:
    """One line, without a "Standalone question:" label or wrapping quotes.

    >>> _clean_rewrite('Standalone question: "What did Powell say?"\\nExtra')
    'What did Powell say?'
    """
    line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
    line = re.sub(r"^(standalone |rewritten )?question\s*:\s*", "", line, flags=re.I)
    line = line.strip().strip("\"'“”")
    return _cut(line, MAX_QUERY_CHARS)


class ConversationResolver:
    """Resolves each question against the conversation: by the LLM when one is given.

    Example:
        >>> ConversationResolver().resolve("who won?", [("Who raced in Monaco?", "…")]).query
        'Who raced in Monaco? who won?'
    """

    def __init__(self, rewriter: QuestionRewriter | None = None) -> None:
        self.rewriter = rewriter

    def resolve(self, question: str, history: History = ()) -> Resolution:
        if self.rewriter is not None and history:
            resolution = self.rewriter.resolve(question, history)
        else:
            resolution = rule_query(question, history)
        if resolution.follow_up:
            logger.info("follow-up (%s): searching %r", resolution.reason, resolution.query)
        return resolution
