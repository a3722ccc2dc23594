"""newsrag's hybrid search behind LangChain's ``BaseRetriever`` interface.

A module of its own: importing LangChain's retriever stack costs about a second, which
the CLI and the app do not need to pay at start-up.
"""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.retrieval import HybridSearcher
from rag.store import Filters


class HybridRetriever(BaseRetriever):
    """:class:`HybridSearcher` behind LangChain's retriever interface.

    Each document is an article's best chunk; its metadata carries the article fields
    and the fused score. Usable in any LangChain chain::

        >>> retriever = HybridRetriever(searcher=searcher)  # doctest: +SKIP
        >>> retriever.invoke("what did Meloni propose?")[0].metadata["title"]  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: HybridSearcher
    filters: Filters | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        documents = []
        for hit in self.searcher.search(query, self.filters):
            chunk = hit.chunks[0]
            documents.append(
                Document(
                    id=chunk.chunk_id,
                    page_content=chunk.text,
                    metadata={
                        "article_id": hit.article_id,
                        "title": hit.title,
                        "source": hit.source,
                        "url": hit.url,
                        "published": hit.published.isoformat() if hit.published else None,
                        "score": hit.score,
                    },
                )
            )
        return documents
