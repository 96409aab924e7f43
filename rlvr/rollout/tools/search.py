"""The ``search`` tool: BM25 (bm25s) over a local JSONL corpus, returning the top-k passages.

    SearchTool(corpus="docs.jsonl", top_k=3)({"query": "who wrote Hamlet"}, {})
    # -> "[1] Hamlet\\nHamlet is a tragedy written by William Shakespeare ...\\n\\n[2] ..."

Corpus: one JSON object per line with a ``text`` field (``text_field``) and optionally a ``title``
(``title_field``). The index (bm25s, English stopwords, lower-cased words) is built once and saved under
``$RLVR_CACHE/search/<key>`` (default ~/.cache/rlvr/search), the key hashing the corpus path, size, mtime and
the settings: later runs (and every rollout worker) load it instead of re-indexing. Each passage is cut to
``max_chars`` characters. Needs the ``tools`` extra (``pip install rlvr[tools]``: bm25s).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rlvr.rollout.tools import TOOLS, ToolError

INDEX_VERSION = 1


def cache_dir() -> Path:
    return Path(os.environ.get("RLVR_CACHE") or "~/.cache/rlvr").expanduser() / "search"


def load_corpus(path: Path, text_field: str, title_field: str) -> list[dict]:
    docs = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"search corpus {path}:{number}: not JSON ({err})") from None
            if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
                raise ValueError(f"search corpus {path}:{number}: no string field {text_field!r}")
            docs.append({"title": str(row.get(title_field) or ""), "text": row[text_field]})
    if not docs:
        raise ValueError(f"search corpus {path} holds no documents")
    return docs


@TOOLS.register("search", doc="BM25 over a local JSONL corpus (bm25s), top-k passages")
class SearchTool:
    name = "search"
    description = "Search the document collection; returns the most relevant passages."
    parameters = {"type": "object", "properties": {"query": {"type": "string", "description": "search words"}},
                  "required": ["query"]}

    def __init__(self, corpus: str = "", top_k: int = 3, max_chars: int = 600, text_field: str = "text",
                 title_field: str = "title"):
        import bm25s

        if not corpus:
            raise ValueError("the search tool needs params.corpus: a JSONL file of documents")
        path = Path(corpus).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"search corpus {path} does not exist")
        if top_k < 1:
            raise ValueError(f"search top_k must be >= 1, got {top_k}")
        self.top_k, self.max_chars = int(top_k), int(max_chars)
        stat = path.stat()
        key = hashlib.sha256(json.dumps([INDEX_VERSION, str(path), stat.st_size, stat.st_mtime_ns, text_field,
                                         title_field, bm25s.__version__]).encode()).hexdigest()[:16]
        folder = cache_dir() / key
        self.index_path, self.cached = folder, (folder / "docs.json").is_file()
        if self.cached:
            self.retriever = bm25s.BM25.load(str(folder))
            self.docs = json.loads((folder / "docs.json").read_text())
        else:
            self.docs = load_corpus(path, text_field, title_field)
            self.retriever = bm25s.BM25()
            self.retriever.index(bm25s.tokenize([f"{d['title']} {d['text']}" for d in self.docs], stopwords="en",
                                                show_progress=False), show_progress=False)
            tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            self.retriever.save(str(tmp))
            (tmp / "docs.json").write_text(json.dumps(self.docs))
            try:
                tmp.rename(folder)  # atomic: a concurrent builder's finished index wins, ours is dropped
            except OSError:
                import shutil

                shutil.rmtree(tmp, ignore_errors=True)

    def search(self, query: str) -> list[tuple[int, float]]:
        """(document index, score) of the top-k documents with a positive score, best first."""
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = min(self.top_k, len(self.docs))
        ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]

    def __call__(self, arguments: dict, state: dict) -> str:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError('search takes {"query": "<words>"}')
        hits = self.search(query)
        if not hits:
            return "no results"
        out = []
        for rank, (i, _) in enumerate(hits, 1):
            doc = self.docs[i]
            text = doc["text"] if len(doc["text"]) <= self.max_chars else doc["text"][: self.max_chars] + " ..."
            out.append(f"[{rank}] {doc['title']}\n{text}" if doc["title"] else f"[{rank}] {text}")
        return "\n\n".join(out)
