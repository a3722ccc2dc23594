"""newsrag: ask questions about news articles, get answers that cite their sources.

>>> from rag import Assistant  # doctest: +SKIP
>>> Assistant.from_settings().ask("what did Meloni propose?").text  # doctest: +SKIP

The names below are imported on first use, so ``import rag.errors`` (done by the
``ingest`` package) or ``newsrag --help`` does not load the whole stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.chains import AssistantAnswerer
    from rag.llm import LLMAnswerer
    from rag.records import Answer, Article, DateWindow, Source
    from rag.retriever import HybridRetriever
    from rag.settings import Settings
    from rag.store import Filters

_EXPORTS = {
    "Assistant": "rag.assistant",
    "AssistantAnswerer": "rag.chains",
    "HybridRetriever": "rag.retriever",
    "LLMAnswerer": "rag.llm",
    "Answer": "rag.records",
    "Article": "rag.records",
    "DateWindow": "rag.records",
    "Source": "rag.records",
    "Settings": "rag.settings",
    "Filters": "rag.store",
}

__all__ = [
    "Answer",
    "Article",
    "Assistant",
    "AssistantAnswerer",
    "DateWindow",
    "Filters",
    "HybridRetriever",
    "LLMAnswerer",
    "Settings",
    "Source",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'rag' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)
