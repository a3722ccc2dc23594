"""newsrag as LangChain parts: retriever, Documents in, any Embeddings, Runnables, async."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnablePassthrough

from rag import HybridRetriever
from rag.assistant import Assistant
from rag.components import build_index
from rag.errors import ConfigError
from rag.llm import PROMPT, LLMAnswerer, build_messages
from rag.records import NOT_FOUND_TEXT
from rag.settings import Settings
from rag.store import Filters
from tests.conftest import SEEDS, make_settings

# Short articles written for these tests.
STRIKE = Document(
    "Dock workers in Rotterdam began a 48-hour strike on Monday over pay. Container "
    "traffic at Europe's largest port stopped, the port authority said.",
    id="strike",
    metadata={
        "title": "Rotterdam dock workers strike over pay",
        "link": "https://news.example/rotterdam-strike",
        "pubDate": "Mon, 04 Mar 2024 09:00:00 GMT",
    },
)
DEAL = Document(
    "Port operators and unions reached a deal ending the Rotterdam strike. Workers get "
    "a 6% pay rise over two years, the union said.",
    id="deal",
    metadata={
        "title": "Deal ends Rotterdam port strike",
        "source": "portnews",
        "date": "2024-03-06",
    },
)
FLOOD = Document(
    "Heavy rain flooded the Meuse valley on Thursday. Liège closed three bridges and "
    "evacuated two hundred homes near the river.",
    metadata={"source": "/archive/meuse-floods_liege.txt", "published_at": "2024-01-11T18:30:00Z"},
)
AS_OF = date(2024, 3, 31)


@pytest.fixture
def library(assistant: Assistant) -> Assistant:
    report = assistant.add_documents([STRIKE, DEAL, FLOOD])
    assert len(report.added) == 3, report.details()
    return assistant


def _fake_chat(reply: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))


# -- retriever -------------------------------------------------------------------------


def test_as_retriever_returns_k_documents_with_article_fields_offsets_and_scores(
    library: Assistant,
) -> None:
    retriever = library.as_retriever(k=2, as_of=AS_OF)
    assert isinstance(retriever, HybridRetriever)
    docs = retriever.invoke("How much is the pay rise that ended the Rotterdam strike?")
    assert len(docs) == 2
    top = docs[0]
    assert top.metadata["title"] == "Deal ends Rotterdam port strike"
    assert top.metadata["source"] == "portnews"
    assert top.metadata["published"] == "2024-03-06"
    assert top.id == top.metadata["chunk_id"]
    start, end = top.metadata["start"], top.metadata["end"]
    assert DEAL.page_content[start:end] == top.page_content
    assert top.metadata["score"] > 0 and top.metadata["chunk_score"] > 0
    assert top.metadata["dense_rank"] is not None and top.metadata["lexical_rank"] is not None
    assert {d.metadata["article_id"] for d in docs} != {top.metadata["article_id"]}


def test_k_given_at_invoke_overrides_the_retrievers_k(library: Assistant) -> None:
    retriever = library.as_retriever(k=3, as_of=AS_OF)
    assert len(retriever.invoke("Rotterdam strike pay", k=1)) == 1
    assert len(retriever.invoke("Rotterdam strike pay")) == 3


def test_dict_filters_keep_only_the_named_source_and_dates(library: Assistant) -> None:
    by_source = library.as_retriever(k=3, as_of=AS_OF, filters={"source": "portnews"})
    assert [d.metadata["title"] for d in by_source.invoke("Rotterdam strike pay")] == [
        "Deal ends Rotterdam port strike"
    ]
    dated = library.as_retriever(
        k=3, filters={"date_from": "2024-01-01", "date_to": date(2024, 1, 31), "as_of": AS_OF}
    )
    assert [d.metadata["title"] for d in dated.invoke("what happened?")] == ["Meuse floods liege"]
    same = library.as_retriever(k=3, filters=Filters(sources=("portnews",), as_of=AS_OF))
    assert [d.id for d in same.invoke("Rotterdam strike pay")] == [
        d.id for d in by_source.invoke("Rotterdam strike pay")
    ]


def test_as_of_leaves_out_articles_published_after_it(library: Assistant) -> None:
    early = library.as_retriever(k=3, as_of=date(2024, 3, 5))
    titles = {d.metadata["title"] for d in early.invoke("Rotterdam strike pay deal")}
    assert "Deal ends Rotterdam port strike" not in titles
    assert "Rotterdam dock workers strike over pay" in titles


def test_an_unknown_filter_key_is_a_config_error_naming_it(library: Assistant) -> None:
    with pytest.raises(ConfigError, match="'outlet'"):
        library.as_retriever(filters={"outlet": "portnews"})


def test_async_retrieval_returns_the_same_documents(library: Assistant) -> None:
    retriever = library.as_retriever(k=2, as_of=AS_OF)
    question = "How much is the pay rise that ended the Rotterdam strike?"
    sync = retriever.invoke(question)
    asynchronous = asyncio.run(retriever.ainvoke(question))
    assert [d.id for d in asynchronous] == [d.id for d in sync]


# -- Documents in ----------------------------------------------------------------------


def test_add_documents_maps_common_metadata_keys(library: Assistant) -> None:
    by_title = {r.title: r for r in library.articles()}
    strike = by_title["Rotterdam dock workers strike over pay"]
    assert strike.url == "https://news.example/rotterdam-strike"
    assert strike.published == date(2024, 3, 4)
    # A file path as source (TextLoader's metadata) names the article; ISO datetimes parse.
    flood = by_title["Meuse floods liege"]
    assert flood.published == date(2024, 1, 11)
    assert flood.source == "/archive/meuse-floods_liege.txt"


def test_adding_the_same_documents_again_adds_nothing(library: Assistant) -> None:
    before = library.stats()
    again = library.add_documents([STRIKE, DEAL, FLOOD])
    assert (len(again.added), len(again.updated), len(again.skipped)) == (0, 0, 3)
    assert again.chunks_written == 0
    after = library.stats()
    assert (after.articles, after.chunks) == (before.articles, before.chunks)


def test_a_changed_document_with_the_same_id_updates_its_article(library: Assistant) -> None:
    changed = Document(
        DEAL.page_content + " The deal runs until 2026.", id="deal", metadata=DEAL.metadata
    )
    report = library.add_documents([changed])
    assert [a.title for a in report.updated] == ["Deal ends Rotterdam port strike"]
    assert len(library.articles()) == 3


def test_a_document_without_text_is_reported_not_raised(assistant: Assistant) -> None:
    report = assistant.add_documents([Document("  ", id="blank"), STRIKE])
    assert len(report.added) == 1
    assert [f.path for f in report.failed] == ["document:blank"]


# -- any Embeddings --------------------------------------------------------------------


def test_a_generic_langchain_embeddings_ingests_and_answers(settings: Settings) -> None:
    fake = DeterministicFakeEmbedding(size=64)  # no tokenizer, no max_tokens
    assistant = Assistant(settings, build_index(settings, fake), fake)
    report = assistant.ingest([SEEDS])
    assert len(report.added) == 1, report.details()
    assistant.add_documents([STRIKE])
    answer = assistant.ask("What did dock workers in Rotterdam begin over pay?", as_of=AS_OF)
    # BM25 finds the article; the fake vectors only blur which sentence is quoted.
    assert answer.found
    assert [s.title for s in answer.sources] == ["Rotterdam dock workers strike over pay"]
    assert answer.text.split("[1]")[0].strip() in STRIKE.page_content


# -- Runnables and LCEL ------------------------------------------------------------------


def test_retriever_piped_into_the_extractive_answerer_answers_with_citations(
    library: Assistant,
) -> None:
    answerer = library.as_answerer()
    assert isinstance(answerer, Runnable)
    chain = library.as_retriever(k=3, as_of=AS_OF) | answerer
    question = "How much is the pay rise that ended the Rotterdam strike?"
    answer = chain.invoke(question)
    assert answer.found and answer.as_of == AS_OF
    assert "Deal ends Rotterdam port strike" in [s.title for s in answer.sources]
    assert "6% pay rise" in answer.text and "[1]" in answer.text
    assert answer.text == library.ask(question, as_of=AS_OF).text


def test_the_llm_answerer_is_a_runnable_built_from_a_chat_prompt_template(
    library: Assistant,
) -> None:
    answerer = LLMAnswerer(_fake_chat("Workers get a 6% pay rise [1][9]."), "fake")
    assert isinstance(answerer.prompt, ChatPromptTemplate)
    retriever = library.as_retriever(k=2, as_of=AS_OF)
    chain = {"documents": retriever, "question": RunnablePassthrough()} | answerer
    answer = chain.invoke("How much is the pay rise that ended the Rotterdam strike?")
    assert answer.text == "Workers get a 6% pay rise [1]."
    assert [s.title for s in answer.sources] == ["Deal ends Rotterdam port strike"]


def test_the_prompt_template_gives_the_messages_the_answerer_sends(library: Assistant) -> None:
    hits = library.search("Rotterdam strike", as_of=AS_OF)
    messages = build_messages("What happened?", hits, as_of=AS_OF)
    assert messages[0].content.startswith("You answer questions about news articles")
    assert NOT_FOUND_TEXT in messages[0].content
    assert '<source id="1"' in messages[1].content
    assert "asked on 2024-03-31" in messages[1].content
    assert set(PROMPT.input_variables) == {"conversation", "sources", "asked_on", "question"}


def test_the_llm_answerer_streams_natively_async(library: Assistant) -> None:
    answerer = LLMAnswerer(_fake_chat("A deal ended the strike [1]."), "fake")
    docs = library.as_retriever(k=1, as_of=AS_OF).invoke("Who ended the Rotterdam strike?")

    async def run() -> list[Any]:
        return [a async for a in answerer.astream(docs)]

    answers = asyncio.run(run())
    assert len(answers) > 2 and not answers[0].done and answers[-1].done
    assert answers[-1].text == "A deal ended the strike [1]."


# -- aask / astream ----------------------------------------------------------------------


def test_aask_answers_like_ask(library: Assistant) -> None:
    question = "How much is the pay rise that ended the Rotterdam strike?"
    asynchronous = asyncio.run(library.aask(question, as_of=AS_OF))
    sync = library.ask(question, as_of=AS_OF)
    assert asynchronous.text == sync.text
    assert [s.title for s in asynchronous.sources] == [s.title for s in sync.sources]
    assert asynchronous.as_of == AS_OF


def test_astream_with_an_llm_streams_partial_answers_then_the_cited_one(
    tmp_path: Any, assistant_factory: Callable[..., Assistant]
) -> None:
    settings = make_settings(tmp_path / "llm", llm_provider="openai", llm_model="fake-model")
    assistant = assistant_factory(settings, _fake_chat("The union got a 6% rise [1]."))
    assistant.add_documents([STRIKE, DEAL])

    async def run() -> list[Any]:
        stream = assistant.astream("What pay rise did the union get?", as_of=AS_OF)
        return [a async for a in stream]

    answers = asyncio.run(run())
    assert [a.done for a in answers][-1] is True and not answers[0].done
    final = answers[-1]
    assert final.text == "The union got a 6% rise [1]."
    assert final.mode == "llm" and final.as_of == AS_OF
    assert final.sources[0].title == "Deal ends Rotterdam port strike"


@pytest.mark.parametrize(
    ("metadata", "title", "url", "published"),
    [
        ({"title": "A", "url": "https://x.example/a", "published": "2024-03-04"}, "A",
         "https://x.example/a", date(2024, 3, 4)),
        ({"headline": "B", "source": "https://x.example/b", "publish_date": 1709546400}, "B",
         "https://x.example/b", date(2024, 3, 4)),
        ({"subject": "C", "pubDate": "Mon, 04 Mar 2024 09:00:00 GMT"}, "C", None,
         date(2024, 3, 4)),
        ({"source": "notes/rate-rise_2024.md", "date": date(2024, 3, 4)}, "Rate rise 2024",
         None, date(2024, 3, 4)),
        ({"source": "wire", "date": "next week"}, "Rates rose.", None, None),
    ],
)  # fmt: skip
def test_loader_metadata_keys_map_to_the_article(
    metadata: dict[str, Any], title: str, url: str | None, published: date | None
) -> None:
    from rag.documents import article_from_document

    article = article_from_document(Document("Rates rose. Markets fell.", metadata=metadata))
    assert (article.title, article.url, article.published) == (title, url, published)


def test_a_filter_date_that_is_not_a_date_is_a_config_error(library: Assistant) -> None:
    with pytest.raises(ConfigError, match="date_from"):
        library.as_retriever(filters={"date_from": "last spring"})
