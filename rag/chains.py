"""newsrag's answerers as LangChain ``Runnable``s, so they compose in LCEL.

An answerer's input is a question and the Documents retrieved for it, in one of the forms
:func:`answer_request` reads; its output is an :class:`~rag.records.Answer`. Because
:class:`rag.retriever.HybridRetriever` records the query on each Document, its output is
a valid input on its own::

    >>> chain = assistant.as_retriever(k=3) | assistant.as_answerer()  # doctest: +SKIP
    >>> chain.invoke("what did Meloni propose?").text  # doctest: +SKIP

With another retriever, pass the question alongside::

    >>> from langchain_core.runnables import RunnablePassthrough  # doctest: +SKIP
    >>> inputs = {"documents": other_retriever, "question": RunnablePassthrough()}  # doctest: +SKIP
    >>> chain = inputs | answerer  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeAlias

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableConfig

from rag.documents import META_AS_OF, META_QUERY, hits_from_documents, parse_date
from rag.errors import QuestionError
from rag.records import Answer
from rag.retrieval import ArticleHit

if TYPE_CHECKING:
    from rag.assistant import Assistant

AnswerInput: TypeAlias = Mapping[str, Any] | Sequence[Document]
"""What an answerer takes: ``{"question": ..., "documents": [...]}`` (``context`` is
accepted for ``documents``, ``input``/``query`` for ``question``; optional ``history``
of ``(question, answer)`` pairs and ``as_of`` date), or a retriever's Documents alone
when they carry the ``query`` they were retrieved for (and the ``as_of`` it was asked on:
``HybridRetriever`` sets both)."""


@dataclass(frozen=True)
class AnswerRequest:
    """An answerer's input, read: the question, the retrieved articles, the context."""

    question: str
    hits: list[ArticleHit]
    history: list[tuple[str, str]]
    as_of: date | None = None


def answer_request(value: AnswerInput) -> AnswerRequest:
    """Read an answerer's input (see :data:`AnswerInput`).

    >>> doc = Document("Rates rose.", metadata={"title": "Fed", "query": "what rose?"})
    >>> r = answer_request([doc])
    >>> r.question, [h.title for h in r.hits]
    ('what rose?', ['Fed'])
    >>> answer_request({"question": "why?", "context": [doc], "as_of": "2022-06-20"}).as_of
    datetime.date(2022, 6, 20)
    """
    if isinstance(value, Mapping):
        question = next(
            (value[k] for k in ("question", "input", "query") if isinstance(value.get(k), str)),
            None,
        )
        if question is None:
            msg = "an answerer's input needs a 'question' (a string)"
            raise QuestionError(msg)
        raw = value.get("documents", value.get("context", value.get("hits", ())))
        if isinstance(raw, str):
            msg = "pass the retrieved Documents as 'documents', not text formatted from them"
            raise QuestionError(msg)
        items = list(raw or ())
        hits = [h for h in items if isinstance(h, ArticleHit)]
        hits += hits_from_documents(d for d in items if isinstance(d, Document))
        history = [(str(q), str(a)) for q, a in value.get("history", ())]
        asked = value.get("as_of") or next(
            (
                d.metadata[META_AS_OF]
                for d in items
                if isinstance(d, Document) and d.metadata.get(META_AS_OF)
            ),
            None,
        )
        as_of = parse_date(asked) if asked is not None else None
        return AnswerRequest(question, hits, history, as_of)
    documents = list(value)
    question = next(
        (str(d.metadata[META_QUERY]) for d in documents if d.metadata.get(META_QUERY)), ""
    )
    if documents and not question:
        msg = (
            "these Documents do not say what was asked: pass "
            "{'question': ..., 'documents': [...]} to the answerer"
        )
        raise QuestionError(msg)
    asked = next((d.metadata[META_AS_OF] for d in documents if d.metadata.get(META_AS_OF)), None)
    return AnswerRequest(question, hits_from_documents(documents), [], parse_date(asked))


class AssistantAnswerer(Runnable[AnswerInput, Answer]):
    """The assistant's answerer as a ``Runnable``: the extractive answerer (quotes from
    the articles, no LLM), or the LLM when the assistant has one, dated and sized as
    :meth:`rag.Assistant.ask` does. Get it with :meth:`rag.Assistant.as_answerer`.

    Example:
        >>> chain = assistant.as_retriever() | assistant.as_answerer()  # doctest: +SKIP
        >>> answer = chain.invoke("what did Meloni propose?")  # doctest: +SKIP
        >>> answer.text, answer.sources[0].title  # doctest: +SKIP
    """

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant

    def invoke(
        self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        """The final answer to ``input`` (a question and its documents)."""
        *_, final = self.stream(input, config)
        return final

    def stream(
        self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Answer]:
        request = self._request(input)
        yield from self.assistant.answer_from(
            request.question, request.hits, history=request.history, as_of=request.as_of
        )

    async def ainvoke(
        self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Answer:
        return await collect(self.astream(input, config))

    async def astream(
        self, input: AnswerInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Answer]:
        request = self._request(input)
        async for answer in self.assistant.aanswer_from(
            request.question, request.hits, history=request.history, as_of=request.as_of
        ):
            yield answer

    def _request(self, value: AnswerInput) -> AnswerRequest:
        request = answer_request(value)
        if not request.question:  # nothing retrieved and nothing asked: nothing found
            return request
        return AnswerRequest(
            self.assistant.check_question(request.question),
            request.hits,
            request.history,
            request.as_of,
        )


async def collect(answers: AsyncIterator[Answer]) -> Answer:
    """The last answer of a stream (the final one).

    >>> import asyncio
    >>> async def one():
    ...     yield Answer("q", "a")
    >>> asyncio.run(collect(one())).text
    'a'
    """
    final = None
    async for answer in answers:
        final = answer
    if final is None:
        msg = "the answer stream ended without an answer"
        raise QuestionError(msg)
    return final
