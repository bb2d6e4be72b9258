#!/usr/bin/env python3
"""Writes the generated seed inputs under fuzz/corpus/TARGET/ (run from the repository root:
`python3 fuzz/seeds.py`). Every seed is made here from nothing but the formats' definitions,
except the dialect profiles and knowledge articles, which are copied from the repository's own
`models/dialects/` and `kb/sample/`. Files named `valid-*` must be accepted: the stable replay
test (tests/it/fuzz_corpus.rs) checks that they are, and that nothing in a corpus panics."""

import json
import math
import os
import shutil
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tone(n, rate, hz=440.0, amp=0.5):
    return [amp * math.sin(2 * math.pi * hz * i / rate) for i in range(n)]


def wav(fmt_tag, channels, rate, bits, payload, extra_fmt=b""):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits) + extra_fmt
    if extra_fmt:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<H", len(extra_fmt)) + extra_fmt
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(payload)) + payload
    if len(payload) % 2:
        chunks += b"\0"
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def i16(samples):
    return b"".join(struct.pack("<h", max(-32768, min(32767, round(s * 32767)))) for s in samples)


def ulaw(sample):
    s = max(-32768, min(32767, round(sample * 32767)))
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exp = 7
    mask = 0x4000
    while exp > 0 and not s & mask:
        exp -= 1
        mask >>= 1
    return (~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0F))) & 0xFF


def alaw(sample):
    s = max(-32768, min(32767, round(sample * 32767)))
    sign, mag = (0x80, s) if s >= 0 else (0x00, -s - 1)
    if mag >= 256:
        exp = 7
        mask = 0x4000
        while not mag & mask:
            exp -= 1
            mask >>= 1
        code = sign | (exp << 4) | ((mag >> (exp + 3)) & 0x0F)
    else:
        code = sign | (mag >> 4)
    return code ^ 0x55


def wav_seeds():
    t = tone(160, 8000)
    put("wav", "valid-pcm16-mono-8k.wav", wav(1, 1, 8000, 16, i16(t)))
    stereo = [s for pair in zip(t, tone(160, 8000, 300.0)) for s in pair]
    put("wav", "valid-pcm16-stereo-8k.wav", wav(1, 2, 8000, 16, i16(stereo)))
    put("wav", "valid-pcm8-mono-16k.wav", wav(1, 1, 16000, 8, bytes(round(128 + 100 * s) for s in t)))
    put("wav", "valid-pcm24-mono-16k.wav",
        wav(1, 1, 16000, 24, b"".join(struct.pack("<i", round(s * 8388607))[:3] for s in t)))
    put("wav", "valid-float32-mono-44k.wav", wav(3, 1, 44100, 32, b"".join(struct.pack("<f", s) for s in t)))
    put("wav", "valid-mulaw-mono-8k.wav", wav(7, 1, 8000, 8, bytes(ulaw(s) for s in t)))
    put("wav", "valid-alaw-mono-8k.wav", wav(6, 1, 8000, 8, bytes(alaw(s) for s in t)))
    full = wav(1, 1, 8000, 16, i16(t))
    put("wav", "truncated-data.wav", full[: len(full) - 100])
    put("wav", "header-only.wav", full[:44])
    # Regressions (RELIABILITY.md, "Fuzzing"): junk, then a RIFF header naming 65535 channels
    # (symphonia's fmt reader overflowed); two-channel mu-law data ending inside a frame.
    fmt = struct.pack("<HHIIHH", 1, 0xFFFF, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + bytes(4)
    put("wav", "regress-symphonia-65535-channels.wav", b"RIFX" + b"RIFF" + struct.pack("<I", len(body)) + body)
    put("wav", "regress-g711-torn-frame.wav", wav(7, 2, 8000, 8, bytes([1, 2, 3, 4, 5])))


def live_seeds():
    t = tone(320, 8000)
    lin = i16(t)
    # [encoding, rate index, channels] then (length byte, bytes) messages.
    def messages(data, size):
        out = b""
        for i in range(0, len(data), size):
            part = data[i:i + size]
            out += bytes([len(part)]) + part
        return out
    put("live_frames", "valid-linear16-mono-8k", bytes([0, 0, 1]) + messages(lin, 160))
    stereo = i16([s for pair in zip(t, tone(320, 8000, 300.0)) for s in pair])
    put("live_frames", "valid-linear16-stereo-16k", bytes([0, 1, 2]) + messages(stereo, 200))
    put("live_frames", "valid-mulaw-mono-8k", bytes([1, 0, 1]) + messages(bytes(ulaw(s) for s in t), 160))
    put("live_frames", "valid-alaw-stereo-48k",
        bytes([2, 3, 2]) + messages(bytes(alaw(s) for pair in zip(t, t) for s in pair), 240))
    put("live_frames", "torn-linear16-stereo", bytes([0, 0, 2]) + messages(stereo, 161))


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def streaming_config(call_id="call-1", encoding=1, rate=8000, channels=1, roles=(), dialect="",
                     region="", language="", interim=False, endpoint_ms=0, metadata=None, model=""):
    out = field(1, call_id) if call_id else b""
    out += field(2, encoding) + field(3, rate)
    if channels:
        out += field(4, channels)
    if roles:
        out += field(5, b"".join(varint(r) for r in roles))
    for n, v in ((6, dialect), (7, region), (8, language), (12, model)):
        if v:
            out += field(n, v)
    if interim:
        out += field(9, 1)
    if endpoint_ms:
        out += field(10, endpoint_ms)
    for k, v in (metadata or {}).items():
        out += field(11, field(1, k) + field(2, v))
    return out


def recognition_config(encoding=1, rate=8000, language="en-US", channels=1, separate=False,
                       phrases=(), model=""):
    """Google's and Riva's RecognitionConfig alike: their shared field numbers."""
    out = field(1, encoding) + field(2, rate) + field(3, language) + field(7, channels)
    if separate:
        out += field(12, 1)
    if phrases:
        out += field(6, b"".join(field(1, p) for p in phrases))
    if model:
        out += field(13, model)
    return out


def speech_seeds():
    # StreamingRecognizeRequest.streaming_config (1) → StreamingRecognitionConfig.config (1).
    first = lambda cfg, extra=b"": field(1, field(1, cfg) + extra)
    put("speech_config", "valid-google-mulaw-stereo",
        first(recognition_config(encoding=3, channels=2, separate=True, phrases=("Zentrix",)),
              field(3, 1)))  # Google interim_results
    put("speech_config", "valid-riva-mandarin", first(recognition_config(rate=16000, language="zh-CN")))
    put("speech_config", "valid-cantonese-adapter", first(recognition_config(language="yue-Hant-HK")))
    put("speech_config", "valid-model-field", first(recognition_config(model="tiny.en")))
    put("speech_config", "bad-encoding-amr", first(recognition_config(encoding=4)))
    put("speech_config", "bad-rate", first(recognition_config(rate=4000)))
    put("speech_config", "bad-model", first(recognition_config(model="whisper-huge")))
    put("speech_config", "bad-phrase-nul", first(recognition_config(phrases=("a\0b",))))


def proto_seeds():
    live = lambda cfg: field(1, cfg)  # StreamingTranscribeRequest.config
    put("proto_config", "valid-live-mono", live(streaming_config()))
    put("proto_config", "valid-live-stereo-cantonese",
        live(streaming_config(rate=16000, channels=2, roles=(1, 2), dialect="cantonese", interim=True,
                              endpoint_ms=600, metadata={"call_started_at_unix_ms": "1764400000000"})))
    put("proto_config", "valid-live-region-english-model",
        live(streaming_config(encoding=2, region="+44 20 7946 0000", model="tiny.en")))
    put("proto_config", "valid-live-language",
        live(streaming_config(encoding=3, rate=48000, channels=1, roles=(3,), language="yue")))
    put("proto_config", "bad-rate", live(streaming_config(rate=4000)))
    put("proto_config", "bad-roles", live(streaming_config(channels=2, roles=(1,))))
    # Regression: a NUL in `language` panicked inside whisper-rs.
    put("proto_config", "regress-language-nul", live(streaming_config(language="e\0n")))
    audio = i16(tone(80, 8000))
    # TranscribeRequest: audio (2) with config (3). Its field 1 (wav) would be a
    # StreamingTranscribeRequest's config, so this one is also tried as that.
    put("proto_config", "valid-transcribe-raw", field(2, audio) + field(3, streaming_config()))


def ggml_seeds():
    # whisper.cpp's header: magic, 11 hyper-parameters, the mel filterbank, the vocabulary;
    # tensors would follow (a real model's are megabytes).
    hp = [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 1, 1]
    head = struct.pack("<I", 0x67676D6C) + struct.pack("<11i", *hp)
    head += struct.pack("<ii", 1, 201) + b"".join(struct.pack("<f", 0.01) for _ in range(201))
    vocab = [b" ", b"a", b"the"]
    head += struct.pack("<i", len(vocab)) + b"".join(struct.pack("<I", len(t)) + t for t in vocab)
    put("ggml", "header-tiny-1-mel", head)
    first = struct.pack("<iii", 2, len(b"encoder.conv1.weight"), 1) + struct.pack("<ii", 3, 1)
    put("ggml", "header-and-tensor-start", head + first + b"encoder.conv1.weight")
    put("ggml", "bad-magic", b"lmgg" + head[4:64])


def ct2_string(s):
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def ct2_var(name, shape, dtype, data):
    return ct2_string(name) + bytes([len(shape)]) + b"".join(struct.pack("<I", d) for d in shape) \
        + bytes([dtype]) + struct.pack("<I", len(data)) + data


def ct2_seeds():
    def model(variables, aliases=()):
        out = struct.pack("<I", 6) + ct2_string("WhisperSpec") + struct.pack("<I", 3)
        out += struct.pack("<I", len(variables)) + b"".join(variables)
        out += struct.pack("<I", len(aliases)) + b"".join(ct2_string(a) + ct2_string(t) for a, t in aliases)
        return out
    v = [
        ct2_var("encoder/num_heads", [], 3, struct.pack("<i", 6)),
        ct2_var("decoder/num_heads", [], 3, struct.pack("<i", 6)),
        ct2_var("encoder/conv1/weight", [4, 2, 3], 4, bytes(4 * 2 * 3 * 2)),
        ct2_var("decoder/embeddings/weight", [8, 4], 0, b"".join(struct.pack("<f", i / 10) for i in range(32))),
        ct2_var("encoder/layer_0/scale", [4], 1, bytes([1, 2, 3, 4])),
        ct2_var("encoder/layer_0/bias16", [2], 2, struct.pack("<hh", -1, 1)),
        ct2_var("encoder/layer_0/bf", [2], 5, bytes(4)),
    ]
    put("ct2", "valid-small-spec", model(v, [("decoder/projection/weight", "decoder/embeddings/weight")]))
    put("ct2", "valid-empty-spec", model([]))
    put("ct2", "truncated", model(v)[:90])


def dialect_seeds():
    src = os.path.join(os.path.dirname(ROOT), "..", "models", "dialects")
    for f in sorted(os.listdir(src)):
        if f in ("english.toml", "putonghua.toml", "wu.toml"):
            shutil.copy(os.path.join(src, f), os.path.join(ROOT, "dialect_profile", "valid-" + f))
    with open(os.path.join(src, "english.toml")) as fh:
        english = fh.read()
    put("dialect_profile", "regress-nul-language-prompt.toml",
        english.replace('name = "English"\n', 'name = "English"\nprompt = "Hi\\u0000"\n')
        .replace('language = "en"', 'language = "e\\u0000n"'))
    put("dialect_profile", "bad-unknown-field.toml",
        'schema = 1\nid = "x"\nversion = "1"\nname = "X"\ncolour = "red"\n[model]\nname = "base"\nlanguage = "en"\n')


def kb_seeds():
    src = os.path.join(os.path.dirname(ROOT), "..", "kb", "sample")
    for f in ("bill-explained.en.md", "double-charge.zh.md"):
        with open(os.path.join(src, f), "rb") as fh:
            put("kb_article", "valid-" + f, b"\0" + fh.read())
    with open(os.path.join(src, "faq.jsonl"), "rb") as fh:
        put("kb_article", "valid-faq.jsonl", b"\1" + fh.read())
    put("kb_article", "no-closing.md", b"\0+++\nid = \"a\"\n")


def spool_seeds():
    seg = {
        "call_id": "call-1", "segment_id": "call-1/0/3", "sequence": 3, "channel": 0,
        "role": "agent", "dialect": "cantonese", "raw_text": "你好", "text": "你好",
        "start_ms": 1200, "end_ms": 2400, "call_started_at_unix_ms": 1764400000000,
        "confidence": 0.875, "language": "yue",
    }
    earlier = dict(seg, segment_id="call-1/1/2", sequence=2, channel=1, role="customer", text="喂")
    put("spool_record", "valid-record.json", json.dumps({"segment": seg, "context": [earlier]}, ensure_ascii=False))
    put("spool_record", "valid-record-no-context.json", json.dumps({"segment": seg, "context": []}))
    put("spool_record", "dead-entry.json", json.dumps({"reason": "HTTP 400", "at_unix_ms": 1764400000000}))


if __name__ == "__main__":
    os.makedirs(os.path.join(ROOT, "dialect_profile"), exist_ok=True)
    wav_seeds()
    live_seeds()
    proto_seeds()
    speech_seeds()
    ggml_seeds()
    ct2_seeds()
    dialect_seeds()
    kb_seeds()
    spool_seeds()
