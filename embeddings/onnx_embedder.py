"""ONNX Runtime inference of the default embedding model (fp32 or dynamic int8), without torch.

`export_onnx` turns the rebuilt sentence-transformers directory (a BERT encoder with mean
pooling) into two ONNX graphs that output the mean-pooled, not yet normalized, embedding:

* `model-fp32.onnx`: `torch.onnx.export` (TorchScript exporter, opset 17), then ONNX Runtime's
  transformer optimizer, which fuses the embeddings, attention, GELU and skip LayerNorms;
* `model-int8.onnx`: dynamic int8 quantization of that graph (weights per channel in 7 bits,
  activations quantized at run time): every MatMul, the fused attention and the word
  embedding table. It is 4x smaller (118 MB instead of 470 MB), loads 3x faster and runs the
  encoder about twice as fast, at a cosine ≥ 0.99 to the fp32 embeddings.

Only `export_onnx` imports torch and transformers (lazily); `OnnxEmbedder` needs nothing but
`onnxruntime`, `tokenizers` and numpy, so a server using it starts without the ~4.5 s import
of torch and sentence-transformers.

`ensure_onnx_model(model_dir, precision)` exports once into `model_dir / "onnx"` under a file
lock and reuses the export while its completion marker matches the source files (sizes, and
checksums when a modification time changed) and the export recipe.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corpus.errors import ModelLoadError
from embeddings.base import Embedder
from embeddings.e5_rebuild import sha256_file
from embeddings.sentence_embedder import E5_DOCUMENT_PREFIX, E5_QUERY_PREFIX, is_e5_model

log = logging.getLogger(__name__)

ONNX_SUBDIR = "onnx"
MARKER_FILE = "export-complete.json"
TOKENIZER_FILE = "tokenizer.json"
MODEL_FILES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}
PRECISIONS = tuple(MODEL_FILES)
EXPORT_FORMAT = 1  # bump when the recipe changes, so older exports are redone
OPSET = 17
BATCH_SIZE = 32
LOCK_TIMEOUT_S = 900.0
# Files of the sentence-transformers directory the export depends on (checked for staleness).
SOURCE_FILES = ("model.safetensors", "config.json", TOKENIZER_FILE, "1_Pooling/config.json")
# The int8 recipe (measured on the committed test texts: min cosine 0.994 to fp32).
INT8_RECIPE: dict[str, Any] = {
    "op_types_to_quantize": None,  # all supported: MatMul, Attention, Gather (embeddings)
    "per_channel": True,
    "reduce_range": True,  # 7-bit weights: no u8*s8 saturation on CPUs without VNNI
    "nodes_to_exclude": [],
}


# ---------------------------------------------------------------------- files and marker


def _file_record(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _records_problem(base: Path, records: dict[str, Any], what: str) -> str | None:
    """Why the files of `records` (relative to `base`) differ from what was recorded."""
    for rel, meta in records.items():
        path = base / rel
        if not path.is_file():
            return f"{what} {rel} missing"
        stat = path.stat()
        if stat.st_size != meta.get("size"):
            return f"{what} {rel} changed size"
        if stat.st_mtime_ns != meta.get("mtime_ns") and sha256_file(path) != meta.get("sha256"):
            return f"{what} {rel} changed content"
    return None


def check_onnx_dir(onnx_dir: Path, model_dir: Path) -> str | None:
    """Why `onnx_dir` is not a complete, up-to-date export of `model_dir` (None when fine).

    Sizes are always compared; a checksum only when a modification time differs from the
    recorded one (hashing ~600 MB at every start would cost seconds)."""
    marker = onnx_dir / MARKER_FILE
    if not marker.is_file():
        return "no export yet (or an interrupted one)"
    try:
        manifest = _read_json(marker)
        fmt = manifest["format"]
        sources: dict[str, Any] = manifest["sources"]
        files: dict[str, Any] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        return "export marker unreadable"
    if fmt != EXPORT_FORMAT:
        return f"exported by an older recipe ({fmt} != {EXPORT_FORMAT})"
    if set(sources) != {rel for rel in SOURCE_FILES if (model_dir / rel).exists()}:
        return "the source model's files changed"
    return _records_problem(model_dir, sources, "source") or _records_problem(
        onnx_dir, files, "exported"
    )


def read_export_info(onnx_dir: Path) -> dict[str, Any]:
    """The completion marker of an export (dimension, max_tokens, pad id…); ModelLoadError."""
    marker = Path(onnx_dir) / MARKER_FILE
    try:
        info = _read_json(marker)
        if not isinstance(info, dict):
            raise ValueError("not an object")
        return info
    except FileNotFoundError as exc:
        raise ModelLoadError(
            f"{onnx_dir} holds no complete ONNX export ({MARKER_FILE} missing); create it with "
            "`ensure_onnx_model(model_dir, precision)`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"the ONNX export marker {marker} is unreadable ({exc}); delete {onnx_dir} and "
            "export again with `ensure_onnx_model`"
        ) from exc


# ---------------------------------------------------------------------- export


def _model_facts(model_dir: Path) -> dict[str, Any]:
    """Dimension, token limit and padding token of a BERT + mean-pooling ST directory."""
    try:
        config = _read_json(model_dir / "config.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{model_dir} is not a readable sentence-transformers directory ({exc})"
        ) from exc
    if config.get("model_type") != "bert" or not pooling.get("pooling_mode_mean_tokens"):
        raise ModelLoadError(
            f"{model_dir}: the ONNX export supports BERT encoders with mean pooling only "
            f"(model_type {config.get('model_type')!r})"
        )
    max_tokens = int(config.get("max_position_embeddings", 512))
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        max_tokens = min(max_tokens, int(_read_json(st_config).get("max_seq_length", max_tokens)))
    return {
        "dimension": int(config["hidden_size"]),
        "num_heads": int(config["num_attention_heads"]),
        "max_tokens": max_tokens,
        "pad_id": int(config.get("pad_token_id", 0)),
    }


def _export_raw(model_dir: Path, path: Path) -> None:
    """TorchScript export of BertModel + masked mean pooling to `path` (imports torch)."""
    import torch
    from transformers import BertModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    wrapper = MeanPooled(bert).eval()
    # Two rows of different lengths, so padding is traced as a real case.
    ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 5, 6, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.long)
    dynamic = {0: "batch", 1: "sequence"}
    # The tracer warns about Python conditions in transformers' mask code (constant for an
    # encoder without cache) and about advanced indexing (no negative indices here); the
    # export is checked against torch on another shape with padding right after.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        _check_against_torch(wrapper, path)


def _check_against_torch(wrapper: Any, path: Path) -> None:
    """Refuse an export whose output differs from the torch model on a padded batch."""
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    ids = rng.integers(5, 30000, size=(3, 23), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 4:] = 0
    ids[:, 0] = 0
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    error = float(np.max(np.abs(got - expected)))
    if error > 1e-3:
        raise ModelLoadError(f"the ONNX export differs from the torch model (max error {error})")


def _optimize(raw: Path, out: Path, num_heads: int, hidden: int) -> None:
    """ONNX Runtime's transformer fusions (EmbedLayerNorm, Attention, BiasGelu, SkipLN)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden, opt_level=1
    )
    fused = model.get_fused_operator_statistics()
    log.info("fused operators: %s", {k: v for k, v in fused.items() if v})
    model.save_model_to_file(str(out))


def _quantize(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization of the optimized fp32 graph with `INT8_RECIPE`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class _NoPreprocessAdvice(logging.Filter):
        """onnxruntime advises «pre-processing» on the root logger: not for this graph, which
        the transformer optimizer already fused (and staff would read it on first start)."""

        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-processing before quantization" not in record.getMessage()

    advice = _NoPreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            # The fused contrib ops defeat shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            **INT8_RECIPE,
        )
    finally:
        root.removeFilter(advice)


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the sentence-transformers directory `model_dir` into `target` (fp32 + int8).

    Writes `model-fp32.onnx`, `model-int8.onnx` and a copy of `tokenizer.json`, each through a
    temporary file renamed into place, then the completion marker (source and output sizes and
    checksums). Needs torch, transformers, onnx and onnxruntime; takes ~30 s on 2 cores.
    Raises `ModelLoadError`.
    """
    model_dir, target = Path(model_dir), Path(target)
    facts = _model_facts(model_dir)
    missing = [rel for rel in SOURCE_FILES if not (model_dir / rel).is_file()]
    if missing:
        raise ModelLoadError(f"cannot export {model_dir} to ONNX: {', '.join(missing)} missing")
    started = time.perf_counter()
    target.mkdir(parents=True, exist_ok=True)
    (target / MARKER_FILE).unlink(missing_ok=True)  # an interrupted export stays detectable
    sources = {rel: _file_record(model_dir / rel) for rel in SOURCE_FILES}
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target) as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        try:
            _export_raw(model_dir, tmp / "raw.onnx")
        except ImportError as exc:
            raise ModelLoadError(
                f"the ONNX export needs torch, transformers, onnx and onnxruntime ({exc}); "
                "install them (`pip install onnx onnxruntime`)"
            ) from exc
        log.info("exported %s to ONNX in %.1f s", model_dir.name, time.perf_counter() - t0)
        t0 = time.perf_counter()
        _optimize(
            tmp / "raw.onnx", tmp / MODEL_FILES["fp32"], facts["num_heads"], facts["dimension"]
        )
        (tmp / "raw.onnx").unlink()
        log.info("optimized the fp32 graph in %.1f s", time.perf_counter() - t0)
        t0 = time.perf_counter()
        _quantize(tmp / MODEL_FILES["fp32"], tmp / MODEL_FILES["int8"])
        log.info("quantized to int8 in %.1f s", time.perf_counter() - t0)
        shutil.copyfile(model_dir / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        for name in (*MODEL_FILES.values(), TOKENIZER_FILE):
            (tmp / name).chmod(0o644)
            os.replace(tmp / name, target / name)
    import onnxruntime

    manifest = {
        "format": EXPORT_FORMAT,
        **facts,
        "opset": OPSET,
        "int8_recipe": INT8_RECIPE,
        "onnxruntime_version": onnxruntime.__version__,
        "sources": sources,
        "files": {n: _file_record(target / n) for n in (*MODEL_FILES.values(), TOKENIZER_FILE)},
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _write_atomic(target / MARKER_FILE, text.encode("utf-8"))
    log.info("ONNX export ready in %s (%.1f s)", target, time.perf_counter() - started)


def ensure_onnx_model(model_dir: Path, precision: str) -> Path:
    """Path of `model_dir/onnx/model-<precision>.onnx`, exporting it first when needed.

    The export runs once, under a file lock (safe for concurrent threads and processes), and
    is reused while its marker matches the source files and the recipe; a stale, partial or
    corrupt export is redone. Raises `ModelLoadError`.
    """
    from filelock import FileLock, Timeout

    _check_precision(precision)
    model_dir = Path(model_dir)
    target = model_dir / ONNX_SUBDIR
    try:
        target.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target / "export.lock"), timeout=LOCK_TIMEOUT_S):
            problem = check_onnx_dir(target, model_dir)
            if problem is not None:
                log.warning("exporting %s to ONNX (%s)", model_dir.name, problem)
                export_onnx(model_dir, target)
    except Timeout as exc:
        raise ModelLoadError(
            f"another process has been exporting the ONNX model for {LOCK_TIMEOUT_S:.0f} s "
            f"(lock {exc.lock_file}); wait for it, or delete the lock file if none is running"
        ) from exc
    except OSError as exc:
        raise ModelLoadError(
            f"cannot write the ONNX export under {target}: {exc}. Check that the directory is "
            "writable and has about 700 MB free"
        ) from exc
    return target / MODEL_FILES[precision]


def _check_precision(precision: str) -> None:
    if precision not in MODEL_FILES:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")


# ---------------------------------------------------------------------- inference


class OnnxEmbedder(Embedder):
    """An `Embedder` running an `export_onnx` graph with ONNX Runtime on CPU.

    Texts are tokenized with `tokenizers`, truncated to `max_tokens` (one warning per batch),
    sorted by length and run in sub-batches of 32 padded to their longest text. E5-family
    models get the `query: ` / `passage: ` prefixes, as with `SentenceTransformerEmbedder`.
    """

    def __init__(
        self,
        onnx_dir: Path,
        *,
        name: str,
        precision: str = "int8",
        threads: int | None = None,
        query_threads: int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        """Load `onnx_dir/model-<precision>.onnx`; `threads` sets ONNX Runtime's intra-op
        threads for documents (None: one per physical core), `query_threads` those for
        questions (the server uses 1: one question per core holds up best when several users
        or a rebuild share the machine). With different settings, the document session is
        created on first use. Raises `ModelLoadError` for missing files."""
        _check_precision(precision)
        onnx_dir = Path(onnx_dir)
        model_path = onnx_dir / MODEL_FILES[precision]
        tokenizer_path = onnx_dir / TOKENIZER_FILE
        info = read_export_info(onnx_dir)
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise ModelLoadError(
                    f"{path} is missing: export the model again with `ensure_onnx_model`"
                )
        self.name = name
        self.precision = precision
        self.batch_size = batch_size
        self.dimension = int(info.get("dimension", 0))
        self.max_tokens = int(info.get("max_tokens", 512))
        self._pad_id = int(info.get("pad_id", 0))
        if is_e5_model(name) or is_e5_model(str(onnx_dir)):
            self.query_prefix, self.document_prefix = E5_QUERY_PREFIX, E5_DOCUMENT_PREFIX
        else:
            self.query_prefix, self.document_prefix = "", ""
        self._model_path = model_path
        self._threads = threads
        self._query_session = _session(model_path, query_threads or threads)
        self._doc_session = self._query_session if query_threads in (None, threads) else None
        self._session_lock = threading.Lock()
        self._tokenizer = _tokenizer(tokenizer_path)
        self._input_names = {i.name for i in self._query_session.get_inputs()}
        if not self.dimension:
            self.dimension = int(self._query_session.get_outputs()[0].shape[-1])

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [enc.ids for enc in self._tokenizer.encode_batch(list(texts))]

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` without prefix, special tokens included."""
        return len(self._tokenizer.encode(text).ids)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed already-prefixed texts (truncated to `max_tokens`), shape (n, dimension)."""
        if self._doc_session is None:
            with self._session_lock:
                if self._doc_session is None:
                    self._doc_session = _session(self._model_path, self._threads)
        return self._embed_with(self._doc_session, texts)

    def embed_query_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed already-prefixed questions on the query session (`query_threads`)."""
        return self._embed_with(self._query_session, texts)

    def _embed_with(self, session: Any, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = self._encode(texts)
        if self.warn_truncated([len(row) for row in ids]):
            # As the tokenizer's own truncation does: keep the head, then the closing token.
            ids = [row if len(row) <= self.max_tokens else _truncate(row, self.max_tokens)
                   for row in ids]  # fmt: skip
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        order = np.argsort([len(row) for row in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            part = order[start : start + self.batch_size]
            out[part] = self._run(session, [ids[i] for i in part])
        return out

    def _run(self, session: Any, rows: list[list[int]]) -> np.ndarray:
        width = max(len(row) for row in rows)
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            attention_mask[i, : len(row)] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return np.asarray(session.run(None, feed)[0], dtype=np.float32)


def _truncate(row: list[int], limit: int) -> list[int]:
    return [*row[: limit - 1], row[-1]]


def _session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types
        raise ModelLoadError(
            f"cannot load the ONNX model {path}: {exc}. Delete {path.parent} and export it "
            "again with `ensure_onnx_model`"
        ) from exc


def _tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelLoadError(f"cannot read the tokenizer {path}: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
