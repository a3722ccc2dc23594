"""Loading, splitting, embedding and storing articles.

>>> from ingest import Ingestor, IngestReport  # doctest: +SKIP
"""

from ingest.pipeline import IngestedArticle, Ingestor, IngestReport

__all__ = ["IngestReport", "IngestedArticle", "Ingestor"]
