"""Pluggable ASR backends (issue 11): loading errors, kind detection, spec parsing, routing; no real weights.

The ONNX files here are written by hand (a few protobuf fields), so no `onnx` package is needed: tiny valid
graphs, with or without the metadata sherpa-onnx expects. A fake SenseVoice graph maps two tones to two
characters, which lets the sherpa-onnx decode path run for real when sherpa-onnx is installed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from intelligence.types import Word
from models.asr import AsrHypothesis, AsrRequest
from models.asr_backends import (
    AsrBackend,
    AsrBackendError,
    FunAsrOnnxBackend,
    LanguageRouter,
    SherpaOnnxBackend,
)
from models.asr_backends import funasr as funasr_mod
from models.asr_backends import sherpa as sherpa_mod
from models.asr_backends.files import check_tokens_txt, read_onnx_info
from models.asr_backends.words import units_from_text, units_from_tokens, words_from_units
from models.loader import load_zh_backend, parse_backend_spec

SR = 16000

# -- a minimal ONNX writer -----------------------------------------------------------------------------------
FLOAT, INT32, INT64 = 1, 6, 7


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _field(num: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, arr: np.ndarray, dtype: int) -> bytes:
    arr = np.ascontiguousarray(arr)
    return b"".join(_field(1, d) for d in arr.shape) + _field(2, dtype) + _field(8, name) + _field(9, arr.tobytes())


def _value_info(name: str, dtype: int, dims: list) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, dtype) + _field(2, shape)))


def _node(op: str, inputs: list[str], outputs: list[str], attrs: bytes = b"") -> bytes:
    return b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outputs) + _field(4, op) + attrs


def _onnx(nodes, inits, inputs, outputs, metadata: dict | None = None) -> bytes:
    graph = (b"".join(_field(1, n) for n in nodes) + _field(2, "g") + b"".join(_field(5, t) for t in inits)
             + b"".join(_field(11, v) for v in inputs) + b"".join(_field(12, v) for v in outputs))
    meta = b"".join(_field(14, _field(1, k) + _field(2, str(v))) for k, v in (metadata or {}).items())
    return _field(1, 8) + _field(2, "harken-test") + _field(7, graph) + _field(8, _field(2, 13)) + meta


def tiny_onnx(metadata: dict | None = None) -> bytes:
    """y = Identity(x): a valid ONNX model that is no speech recogniser."""
    return _onnx([_node("Identity", ["x"], ["y"])], [], [_value_info("x", FLOAT, ["N"])],
                 [_value_info("y", FLOAT, ["N"])], metadata)


def _mel(f: float) -> float:
    return 1127.0 * math.log(1 + f / 700.0)


TONES = (300.0, 2500.0)  # the fake SenseVoice says 你 for the first tone and 好 for the second


def fake_sense_voice_onnx(vocab: int = 8) -> bytes:
    """A SenseVoice-shaped graph (x, x_length, language, text_norm -> logits) with sherpa-onnx's metadata: four
    fixed prompt frames, then per frame blank unless the log-mel energy around one of TONES is high."""
    lo, hi = _mel(20.0), _mel(8000.0)
    centres = [lo + (i + 1) * (hi - lo) / 81 for i in range(80)]
    w = np.zeros((560, vocab), np.float32)
    for k, f in enumerate(TONES):
        band = [i for i, c in enumerate(centres) if abs(c - _mel(f)) < 40]
        w[band, 5 + k] = 1.0 / len(band)
    bias = np.full(vocab, -1e4, np.float32)
    bias[0], bias[5], bias[6] = 5.0, 0.0, 0.0
    prefix = np.full((1, 4, vocab), -1e4, np.float32)
    for i in range(4):
        prefix[0, i, 1 + i] = 0.0  # language, emotion, event, itn tags: sherpa-onnx drops the first four tokens
    axis = _field(5, _field(1, "axis") + _field(3, 1) + _field(20, 2))
    nodes = [_node("MatMul", ["x", "w"], ["h"]), _node("Add", ["h", "b"], ["y"]),
             _node("Concat", ["p", "y"], ["logits"], axis)]
    inits = [_tensor("w", w, FLOAT), _tensor("b", bias, FLOAT), _tensor("p", prefix, FLOAT)]
    inputs = [_value_info("x", FLOAT, ["N", "T", 560]), _value_info("x_length", INT32, ["N"]),
              _value_info("language", INT32, ["N"]), _value_info("text_norm", INT32, ["N"])]
    meta = {"vocab_size": vocab, "lfr_window_size": 7, "lfr_window_shift": 6, "normalize_samples": 0,
            "with_itn": 14, "without_itn": 15, "lang_auto": 0, "lang_zh": 3, "lang_en": 4, "lang_ja": 11,
            "lang_ko": 12, "lang_yue": 7, "neg_mean": ",".join(["0"] * 560), "inv_stddev": ",".join(["1"] * 560)}
    return _onnx(nodes, inits, inputs, [_value_info("logits", FLOAT, ["N", "T2", vocab])], meta)


SENSE_VOICE_TOKENS = "<blk> 0\n<|zh|> 1\n<|NEUTRAL|> 2\n<|Speech|> 3\n<|withitn|> 4\n你 5\n好 6\n<unk> 7\n"
PARAFORMER_TOKENS = "<blank> 0\n<s> 1\n</s> 2\n你 3\n好 4\n<unk> 5\n"


def _tone(f: float, s: float) -> np.ndarray:
    t = np.arange(int(s * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _silence(s: float) -> np.ndarray:
    return np.zeros(int(s * SR), np.float32)


def _write(d: Path, files: dict[str, bytes | str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return d


def paraformer_dir(tmp_path: Path, name: str = "sherpa-onnx-paraformer-zh", **extra) -> Path:
    files = {"model.onnx": tiny_onnx({"vocab_size": 6}), "tokens.txt": PARAFORMER_TOKENS, **extra}
    return _write(tmp_path / name, files)


def transducer_dir(tmp_path: Path, name: str = "zipformer-zh", encoder_meta: dict | None = None) -> Path:
    return _write(tmp_path / name, {
        "encoder-epoch-99-avg-1.onnx": tiny_onnx(encoder_meta or {}),
        "decoder-epoch-99-avg-1.onnx": tiny_onnx({"vocab_size": 6, "context_size": 2}),
        "joiner-epoch-99-avg-1.onnx": tiny_onnx(), "tokens.txt": PARAFORMER_TOKENS})


needs_sherpa = pytest.mark.skipif(not sherpa_mod.runtime_installed(), reason="sherpa-onnx is not installed")


# -- directory validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [SherpaOnnxBackend, FunAsrOnnxBackend])
def test_missing_directory(tmp_path, backend):
    with pytest.raises(AsrBackendError, match="does not exist") as err:
        backend.from_dir(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value)


def test_path_that_is_a_file(tmp_path):
    (tmp_path / "model.onnx").write_bytes(tiny_onnx())
    with pytest.raises(AsrBackendError, match="is not a directory"):
        SherpaOnnxBackend.from_dir(tmp_path / "model.onnx")


def test_directory_without_a_model(tmp_path):
    (tmp_path / "README.md").write_text("weights go here")
    with pytest.raises(AsrBackendError, match="no sherpa-onnx model found.*encoder.*model.onnx"):
        SherpaOnnxBackend.from_dir(tmp_path)


def test_missing_tokens(tmp_path):
    d = paraformer_dir(tmp_path)
    (d / "tokens.txt").unlink()
    with pytest.raises(AsrBackendError, match=r"tokens.txt: file is missing") as err:
        SherpaOnnxBackend.from_dir(d)
    assert err.value.file == "tokens.txt" and err.value.directory == d


def test_transducer_missing_joiner(tmp_path):
    d = transducer_dir(tmp_path)
    (d / "joiner-epoch-99-avg-1.onnx").unlink()
    with pytest.raises(AsrBackendError, match=r"no joiner\*\.onnx"):
        SherpaOnnxBackend.from_dir(d, kind="transducer")


def test_transducer_ambiguous_encoders(tmp_path):
    d = transducer_dir(tmp_path)
    (d / "encoder-epoch-12-avg-4.onnx").write_bytes(tiny_onnx())
    with pytest.raises(AsrBackendError, match="several encoder files"):
        SherpaOnnxBackend.from_dir(d)


@pytest.mark.parametrize("content,problem", [
    ("<blk> 0\n你好\n", r"line 2 is not '<token> <id>'"),
    ("<blk> zero\n", r"line 1 is not '<token> <id>'"),
    ("", "holds no tokens"),
    ("\n\n", "holds no tokens"),
    ("a 0\nb 0\n", "id 0 appears twice"),
    (b"\x00\x01binary", "is binary"),
    (b"\xff\xfe a 0\n", "not UTF-8"),
    ("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
])
def test_tokens_txt_wrong_format(tmp_path, content, problem):
    d = paraformer_dir(tmp_path, **{"tokens.txt": content})
    with pytest.raises(AsrBackendError, match=problem) as err:
        SherpaOnnxBackend.from_dir(d, kind="paraformer")
    assert "tokens.txt" in str(err.value) and str(d) in str(err.value)


def test_tokens_txt_accepts_the_space_token(tmp_path):
    (tmp_path / "tokens.txt").write_text("<blk> 0\n 1\n▁A 2\n你 3\r\n")
    assert check_tokens_txt(tmp_path) == 4


@pytest.mark.parametrize("content,problem", [
    (b"", "file is empty"),
    (bytes(range(256)) * 40, "is not an ONNX model"),
    (np.random.default_rng(0).bytes(4096), "is not an ONNX model"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n", "Git LFS pointer"),
    (b"hello, I am a text file pretending to be a model\n", "is not an ONNX model"),
])
def test_model_onnx_that_is_not_onnx(tmp_path, content, problem):
    d = paraformer_dir(tmp_path, **{"model.onnx": content})
    with pytest.raises(AsrBackendError, match=problem) as err:
        SherpaOnnxBackend.from_dir(d)
    assert err.value.file == "model.onnx" and "model.onnx" in str(err.value)


def test_truncated_onnx(tmp_path):
    data = fake_sense_voice_onnx()
    d = paraformer_dir(tmp_path, **{"model.onnx": data[: len(data) // 2]})
    with pytest.raises(AsrBackendError, match="model.onnx: is not an ONNX model .*past the end"):
        SherpaOnnxBackend.from_dir(d)


def test_onnx_metadata_is_read(tmp_path):
    (tmp_path / "m.onnx").write_bytes(tiny_onnx({"vocab_size": 6, "model_type": "zipformer2"}))
    info = read_onnx_info(tmp_path, "m.onnx")
    assert info.ir_version == 8 and info.metadata == {"vocab_size": "6", "model_type": "zipformer2"}


def test_paraformer_without_sherpa_metadata(tmp_path):
    d = paraformer_dir(tmp_path, **{"model.onnx": tiny_onnx()})
    with pytest.raises(AsrBackendError, match="model.onnx: has no 'vocab_size' metadata.*funasr:"):
        SherpaOnnxBackend.from_dir(d)


def test_streaming_transducer_needs_model_type(tmp_path):
    d = transducer_dir(tmp_path, encoder_meta={"decode_chunk_len": 32, "T": 45})
    with pytest.raises(AsrBackendError, match="encoder-epoch-99-avg-1.onnx: has no 'model_type' metadata"):
        SherpaOnnxBackend.from_dir(d)


# -- kind detection --------------------------------------------------------------------------------------------
def test_detect_kinds_from_file_names(tmp_path):
    def make(name: str, files: list[str], tokens: str = PARAFORMER_TOKENS) -> Path:
        return _write(tmp_path / name, {**{f: b"" for f in files}, "tokens.txt": tokens})

    detect = sherpa_mod.detect_kind
    assert detect(make("a", ["encoder.onnx", "decoder.onnx", "joiner.onnx"])) == "transducer"
    assert detect(make("sherpa-onnx-streaming-zipformer-zh-14M", ["encoder.int8.onnx", "decoder.onnx",
                                                                   "joiner.int8.onnx"])) == "streaming-transducer"
    assert detect(make("b", ["model.int8.onnx"])) == "paraformer"
    assert detect(make("c", ["model.onnx"], SENSE_VOICE_TOKENS)) == "sense-voice"
    assert detect(make("sherpa-onnx-sense-voice-zh-en", ["model.onnx"])) == "sense-voice"
    assert detect(make("sherpa-onnx-paraformer-zh", ["model.onnx"], SENSE_VOICE_TOKENS)) == "paraformer"


def test_detect_streaming_from_encoder_metadata(tmp_path):
    files = sherpa_mod.inspect_model_dir(transducer_dir(tmp_path, encoder_meta={"model_type": "zipformer2",
                                                                                "decode_chunk_len": 32}))
    assert files.kind == "streaming-transducer"
    assert files.models == {"encoder": "encoder-epoch-99-avg-1.onnx", "decoder": "decoder-epoch-99-avg-1.onnx",
                            "joiner": "joiner-epoch-99-avg-1.onnx"}
    offline = sherpa_mod.inspect_model_dir(transducer_dir(tmp_path, "offline", encoder_meta={"model_type": "z"}))
    assert offline.kind == "transducer"


def test_int8_files_preferred(tmp_path):
    d = paraformer_dir(tmp_path, **{"model.int8.onnx": tiny_onnx({"vocab_size": 6})})
    assert sherpa_mod.inspect_model_dir(d).models == {"model": "model.int8.onnx"}
    assert sherpa_mod.inspect_model_dir(d, prefer_int8=False).models == {"model": "model.onnx"}


def test_explicit_kind_must_match_the_files(tmp_path):
    with pytest.raises(AsrBackendError, match="no encoder"):
        SherpaOnnxBackend.from_dir(paraformer_dir(tmp_path), kind="streaming-zipformer")
    with pytest.raises(ValueError, match="unknown sherpa-onnx model kind"):
        SherpaOnnxBackend.from_dir(paraformer_dir(tmp_path), kind="whisper")


def test_missing_runtime_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(sherpa_mod, "runtime_installed", lambda: False)
    with pytest.raises(AsrBackendError, match="sherpa-onnx package is not installed.*pip install"):
        SherpaOnnxBackend.from_dir(paraformer_dir(tmp_path))


# -- sherpa-onnx itself ----------------------------------------------------------------------------------------
@needs_sherpa
def test_sherpa_rejects_a_valid_but_wrong_graph_without_killing_us(tmp_path):
    """sherpa-onnx exits the process on this model (metadata incomplete): the probe turns that into an error."""
    d = paraformer_dir(tmp_path)
    with pytest.raises(AsrBackendError, match=r"model.onnx: sherpa-onnx cannot load this paraformer model "
                                              r"\(exit status .*lfr_window_size"):
        SherpaOnnxBackend.from_dir(d, probe_timeout_s=60)


@needs_sherpa
def test_sherpa_runtime_error_from_transducer(tmp_path):
    d = transducer_dir(tmp_path)
    with pytest.raises(AsrBackendError, match="sherpa-onnx cannot load this transducer model"):
        SherpaOnnxBackend.from_dir(d, probe_timeout_s=60)


@needs_sherpa
def test_sherpa_sense_voice_decode(tmp_path):
    d = _write(tmp_path / "fake-sense-voice", {"model.onnx": fake_sense_voice_onnx(),
                                               "tokens.txt": SENSE_VOICE_TOKENS})
    backend = SherpaOnnxBackend.from_dir(d, num_threads=1)
    assert isinstance(backend, AsrBackend)
    assert backend.kind == "sense-voice" and backend.model_name == "sherpa-sense-voice:fake-sense-voice"
    audio = np.concatenate([_silence(0.3), _tone(TONES[0], 0.5), _silence(0.3), _tone(TONES[1], 0.5),
                            _silence(0.3)])
    hyp = backend.decode(AsrRequest(audio=audio, language="zh", prefix="ignored", beam_size=5))
    assert [w.text for w in hyp.words] == ["你", "好"] and hyp.text == "你好"
    # token times (60 ms frames) near the tones' onsets at 0.3 s and 1.1 s
    assert abs(hyp.words[0].start_s - 0.3) < 0.15 and abs(hyp.words[1].start_s - 1.1) < 0.15
    assert hyp.words[0].end_s <= hyp.words[1].start_s
    assert hyp.language == "zh" and hyp.avg_logprob == 0.0 and hyp.no_speech_prob == 0.0
    assert hyp.compression_ratio > 0 and hyp.model == backend.model_name
    silent = backend.decode(AsrRequest(audio=_silence(1.0), language="zh"))
    assert silent.words == () and silent.no_speech_prob == 1.0
    assert backend.decode(AsrRequest(audio=_silence(0.01), language="zh")).words == ()
    assert backend.transcribe_offline(audio, "zh") == "你好"


# -- FunASR ------------------------------------------------------------------------------------------------------
def _cmvn(dim: int = 560) -> str:
    zeros, ones = " ".join(["0"] * dim), " ".join(["1"] * dim)
    return (f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {zeros} ]\n"
            f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {ones} ]\n</Nnet>\n")


FUNASR_CONFIG = ("model: Paraformer\nfrontend_conf:\n  fs: 16000\n  window: hamming\n  n_mels: 80\n"
                 "  frame_length: 25\n  frame_shift: 10\n  lfr_m: 7\n  lfr_n: 6\nmodel_conf:\n  ctc_weight: 0.0\n")


def fake_funasr_paraformer_onnx() -> bytes:
    """Paraformer-shaped (speech, speech_lengths -> logits, token_num) that always says 你好."""
    scores = np.full((1, 2, 6), -10.0, np.float32)
    scores[0, 0, 3] = scores[0, 1, 4] = 0.0
    nodes = [_node("Identity", ["s"], ["logits"]), _node("Identity", ["n"], ["token_num"])]
    inits = [_tensor("s", scores, FLOAT), _tensor("n", np.array([2], np.int32), INT32)]
    inputs = [_value_info("speech", FLOAT, ["N", "T", 560]), _value_info("speech_lengths", INT32, ["N"])]
    outputs = [_value_info("logits", FLOAT, [1, 2, 6]), _value_info("token_num", INT32, [1])]
    return _onnx(nodes, inits, inputs, outputs)


def funasr_dir(tmp_path: Path, name: str = "paraformer-onnx", **overrides) -> Path:
    files = {"model.onnx": fake_funasr_paraformer_onnx(), "config.yaml": FUNASR_CONFIG, "am.mvn": _cmvn(),
             "tokens.json": '["<blank>", "<s>", "</s>", "你", "好", "<unk>"]', **overrides}
    return _write(tmp_path / name, {k: v for k, v in files.items() if v is not None})


@pytest.mark.parametrize("overrides,problem", [
    ({"model.onnx": None}, "no model.onnx or model_quant.onnx"),
    ({"model.onnx": b"\x00garbage" * 50}, "model.onnx: is not an ONNX model"),
    ({"config.yaml": None}, "config.yaml: file is missing"),
    ({"config.yaml": "frontend_conf: [unclosed"}, "config.yaml: is not valid YAML"),
    ({"config.yaml": "model: Paraformer\n"}, "config.yaml: has no 'frontend_conf' section"),
    ({"config.yaml": "frontend_conf: {fs: 16000}\n"}, "config.yaml: has no 'model_conf' section"),
    ({"config.yaml": FUNASR_CONFIG.replace("Paraformer", "SeacoParaformer")}, "only Paraformer"),
    ({"am.mvn": None}, "am.mvn: file is missing"),
    ({"am.mvn": "1 2 3\n"}, r"am.mvn: has no <AddShift> block"),
    ({"am.mvn": _cmvn().replace("<LearnRateCoef> 0 [ 1", "<LearnRateCoef> 0 [ x")}, "values are not numbers"),
    ({"tokens.json": None}, "tokens.json: file is missing"),
    ({"tokens.json": None, "tokens.txt": PARAFORMER_TOKENS}, "tokens.json: .*sherpa-onnx export.*sherpa:"),
    ({"tokens.json": '{"a": 1}'}, "tokens.json: must be a non-empty JSON array"),
    ({"tokens.json": "[1, 2"}, "tokens.json: is not JSON"),
])
def test_funasr_validation(tmp_path, overrides, problem):
    with pytest.raises(AsrBackendError, match=problem) as err:
        FunAsrOnnxBackend.from_dir(funasr_dir(tmp_path, **overrides))
    assert str(tmp_path / "paraformer-onnx") in str(err.value)


def test_funasr_kind_and_quantised_model(tmp_path):
    d = funasr_dir(tmp_path, **{"model_quant.onnx": fake_funasr_paraformer_onnx()})
    files = funasr_mod.inspect_model_dir(d)
    assert (files.kind, files.model, files.quantize) == ("paraformer", "model_quant.onnx", True)
    assert funasr_mod.inspect_model_dir(d, quantize=False).model == "model.onnx"
    sv = funasr_dir(tmp_path, "sv", **{"tokens.json": None, funasr_mod.SENSE_VOICE_BPE: b"\x0a\x05piece",
                                       "config.yaml": FUNASR_CONFIG.replace("Paraformer", "SenseVoiceSmall")})
    assert funasr_mod.inspect_model_dir(sv).kind == "sense-voice"
    (sv / funasr_mod.SENSE_VOICE_BPE).unlink()
    with pytest.raises(AsrBackendError, match="chn_jpn_yue_eng_ko_spectok.bpe.model: file is missing"):
        funasr_mod.inspect_model_dir(sv)
    only_quant = funasr_dir(tmp_path, "q", **{"model.onnx": None, "model_quant.onnx": fake_funasr_paraformer_onnx()})
    with pytest.raises(AsrBackendError, match="model.onnx: file is missing.*quantize=True"):
        funasr_mod.inspect_model_dir(only_quant, quantize=False)


def test_funasr_missing_runtime(tmp_path, monkeypatch):
    monkeypatch.setattr(funasr_mod, "runtime_installed", lambda: False)
    with pytest.raises(AsrBackendError, match="funasr-onnx package is not installed.*--no-deps"):
        FunAsrOnnxBackend.from_dir(funasr_dir(tmp_path))


@pytest.mark.skipif(not funasr_mod.runtime_installed(), reason="funasr-onnx is not installed")
def test_funasr_paraformer_decode(tmp_path):
    backend = FunAsrOnnxBackend.from_dir(funasr_dir(tmp_path), num_threads=1)
    assert backend.model_name == "funasr-paraformer:paraformer-onnx"
    hyp = backend.decode(AsrRequest(audio=_tone(300.0, 1.0), language="zh"))
    assert [w.text for w in hyp.words] == ["你", "好"] and hyp.words[1].start_s == pytest.approx(0.5)
    assert backend.transcribe_offline(_tone(300.0, 1.0), "zh") == "你好"


# -- words -------------------------------------------------------------------------------------------------------
def test_units_from_sentencepiece_and_cjk_tokens():
    tokens = ["我", "们", "用", "▁I", "PH", "ONE", "▁ok", "，", "好"]
    starts = [0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 1.0, 1.2, 1.3]
    words = words_from_units(units_from_tokens(tokens, starts, 2.0), 2.0, "zh")
    assert [w.text for w in words] == ["我", "们", "用", " IPHONE", " ok，", "好"]
    assert (words[3].start_s, words[3].end_s) == (0.6, 1.0)
    assert words[-1].end_s == pytest.approx(1.8)  # capped: a pause follows the last token


def test_units_from_paraformer_pieces():
    units = units_from_tokens(["你", "hel@@", "lo", "world", "好"], None, 1.0)
    assert [(u.text, u.latin) for u in units] == [("你", False), ("hello", True), ("world", True), ("好", False)]
    words = words_from_units(units, 1.0, "zh")
    assert [w.start_s for w in words] == [0.0, 0.25, 0.5, 0.75]  # no times: spread evenly


def test_multi_character_token_times_are_split():
    units = units_from_tokens(["<|zh|>", "你好"], [0.0, 1.0], 2.0)
    assert [(u.text, u.start, u.end) for u in units] == [("你", 1.0, 1.25), ("好", 1.25, 1.5)]


def test_units_from_text_traditional_to_simplified():
    words = words_from_units(units_from_text("<|zh|>我們 use Zoom。"), 1.0, "zh")
    assert [w.text for w in words] == ["我", "们", " use", " Zoom。"]


# -- spec parsing --------------------------------------------------------------------------------------------------
def test_parse_backend_spec():
    assert parse_backend_spec("sherpa:/m/x") == ("sherpa", "auto", Path("/m/x"))
    assert parse_backend_spec("sherpa-paraformer:/m/x") == ("sherpa", "paraformer", Path("/m/x"))
    assert parse_backend_spec(" SHERPA-streaming-zipformer:/m ") == ("sherpa", "streaming-transducer", Path("/m"))
    assert parse_backend_spec("funasr-sensevoice:/a:b") == ("funasr", "sense-voice", Path("/a:b"))
    assert parse_backend_spec("funasr:~/m")[2] == Path("~/m").expanduser()


@pytest.mark.parametrize("spec,problem", [
    ("whisper:/m", "unknown ASR backend 'whisper'"),
    ("/models/paraformer", "has no ':'"),
    ("sherpa:", "names no model directory"),
    ("sherpa:   ", "names no model directory"),
    ("sherpa-conformer:/m", "unknown sherpa-onnx model kind"),
    ("funasr-transducer:/m", "unknown FunASR model kind"),
])
def test_parse_backend_spec_errors(spec, problem):
    with pytest.raises(ValueError, match=problem):
        parse_backend_spec(spec)


def test_load_zh_backend_reports_the_directory(tmp_path):
    with pytest.raises(AsrBackendError, match="does not exist"):
        load_zh_backend(f"sherpa:{tmp_path / 'absent'}")
    with pytest.raises(AsrBackendError, match="config.yaml: file is missing"):
        load_zh_backend(f"funasr-paraformer:{funasr_dir(tmp_path, **{'config.yaml': None})}")


# -- routing -------------------------------------------------------------------------------------------------------
class FakeBackend:
    """Returns a fixed hypothesis in its language (or `detects` when asked to detect); records its requests."""

    def __init__(self, name: str, language: str, detects: str | None = None) -> None:
        self.model_name, self.language, self.detects = name, language, detects
        self.requests: list[AsrRequest] = []
        self.offline: list[str | None] = []
        self.beam_size = 2

    def decode(self, request: AsrRequest) -> AsrHypothesis:
        self.requests.append(request)
        language = request.language or self.detects or self.language
        probs = {"en": 0.2, "zh": 0.8} if request.language is None else {}
        return AsrHypothesis(words=(Word(f" {self.model_name}", 0.0, 0.5),), language=language, avg_logprob=-0.1,
                             no_speech_prob=0.0, compression_ratio=1.0, model=self.model_name, decode_s=0.25,
                             language_probs=probs)

    def transcribe_offline(self, audio, language, beam_size=5, vocabulary=""):
        self.offline.append(language)
        return self.model_name


def _req(language):
    return AsrRequest(audio=np.zeros(SR, np.float32), language=language)


def test_router_routes_by_language():
    whisper, zh = FakeBackend("whisper-base", "en"), FakeBackend("sherpa-paraformer:x", "zh")
    router = LanguageRouter(whisper, {"zh": zh})
    assert isinstance(router, AsrBackend)
    assert router.model_name == "whisper-base+sherpa-paraformer:x"
    assert router.decode(_req("zh")).model == "sherpa-paraformer:x"
    assert router.decode(_req("en")).model == "whisper-base"
    assert router.decode(_req("ja")).model == "whisper-base"  # unrouted languages stay with the default
    assert [r.language for r in zh.requests] == ["zh"] and [r.language for r in whisper.requests] == ["en", "ja"]
    assert router.beam_size == 2  # unknown attributes are the default backend's
    with pytest.raises(AttributeError):
        router.no_such_attribute  # noqa: B018


def test_router_auto_language_english_decodes_once():
    whisper, zh = FakeBackend("whisper-base", "en", detects="en"), FakeBackend("sherpa", "zh")
    hyp = LanguageRouter(whisper, {"zh": zh}).decode(_req(None))
    assert hyp.model == "whisper-base" and hyp.language == "en"
    assert len(whisper.requests) == 1 and zh.requests == []


def test_router_auto_language_chinese_is_redecoded():
    whisper, zh = FakeBackend("whisper-base", "en", detects="zh"), FakeBackend("sherpa", "zh")
    request = replace(_req(None), prompt="p", context_s=0.5)
    hyp = LanguageRouter(whisper, {"zh": zh}).decode(request)
    assert hyp.model == "sherpa" and hyp.language == "zh"
    assert hyp.language_probs == {"en": 0.2, "zh": 0.8}  # from Whisper's detection
    assert hyp.decode_s == pytest.approx(0.5)  # both decodes counted
    assert zh.requests == [replace(request, language="zh")]


def test_router_offline_transcripts():
    whisper, zh = FakeBackend("whisper-base", "en", detects="zh"), FakeBackend("sherpa", "zh")
    router = LanguageRouter(whisper, {"zh": zh})
    assert router.transcribe_offline(np.zeros(SR, np.float32), "zh") == "sherpa"
    assert router.transcribe_offline(np.zeros(SR, np.float32), "en") == "whisper-base"
    assert router.transcribe_offline(np.zeros(SR, np.float32), None) == "sherpa"  # detected zh
    assert zh.offline == ["zh", "zh"] and whisper.offline == ["en"]
    with pytest.raises(ValueError):
        LanguageRouter(whisper, {})


# -- runtime integration -------------------------------------------------------------------------------------------
def test_executor_factory_wraps_whisper_only_when_configured(tmp_path, monkeypatch):
    import models.loader
    from pipelines.runtime import executor_factory
    from pipelines.settings import HarkenSettings

    whisper = FakeBackend("whisper-base", "en")
    specs = []
    monkeypatch.setattr(models.loader, "load_asr", lambda *a, **k: whisper)

    def fake_zh(spec, **kwargs):
        specs.append((spec, kwargs))
        return FakeBackend("sherpa-paraformer:m", "zh")

    monkeypatch.setattr(models.loader, "load_zh_backend", fake_zh)
    plain = executor_factory(HarkenSettings(data_dir=tmp_path))()
    try:
        assert plain.decoder is whisper
    finally:
        plain.close()
    settings = HarkenSettings(data_dir=tmp_path, asr_zh_backend="sherpa:/m", asr_threads=1, asr_workers=2)
    routed = executor_factory(settings)()
    try:
        assert isinstance(routed.decoder, LanguageRouter)
        assert routed.decoder.model_name == "whisper-base+sherpa-paraformer:m"
        assert specs == [("sherpa:/m", {"num_threads": 2})]
    finally:
        routed.close()
