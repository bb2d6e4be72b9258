#!/usr/bin/env python3
"""Silero VAD reference probabilities from onnxruntime, for tests/it/silero.rs.

    silero_ref.py MODEL.onnx AUDIO.wav

AUDIO.wav: 16 kHz mono, 16-bit PCM or 32-bit float (plain or WAVE_FORMAT_EXTENSIBLE). Prints one JSON object on stdout:
{"chunk_samples": 512, "probabilities": [...]} with one speech probability per 512-sample chunk,
the last partial chunk padded with zeros.

The loop is the `silero-vad` wheel's OnnxWrapper (`__call__` via `audio_forward`, version
6.2.3) written with numpy instead of torch: the previous chunk's last 64 input samples are
prepended to each 512-sample chunk (zeros at the start), and the [2, 1, 128] LSTM state the
model returns is fed back in. One intra-op thread, as the wrapper sets.

Needs: onnxruntime, numpy.
"""

import json
import struct
import sys
import wave

import numpy as np
import onnxruntime

CHUNK = 512
CONTEXT = 64
RATE = 16000


def read_wav(path):
    """Mono float32 samples of a 16 kHz WAV (PCM16, or IEEE float read from the raw chunks)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        sys.exit(f"{path}: not a RIFF/WAVE file")
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if tag == b"fmt ":
            fmt = list(struct.unpack("<HHIIHH", body[:16]))
            if fmt[0] == 0xFFFE and len(body) >= 26:
                # WAVE_FORMAT_EXTENSIBLE (hound's choice for float): the real format code
                # opens the sub-format GUID.
                fmt[0] = struct.unpack("<H", body[24:26])[0]
        elif tag == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if fmt is None or samples is None:
        sys.exit(f"{path}: no fmt or data chunk")
    format_tag, channels, rate, _, _, bits = fmt
    if channels != 1 or rate != RATE:
        sys.exit(f"{path}: need 16 kHz mono, got {rate} Hz with {channels} channels")
    if format_tag == 3 and bits == 32:
        return np.frombuffer(samples, dtype="<f4").astype(np.float32)
    if format_tag == 1 and bits == 16:
        return np.frombuffer(samples, dtype="<i2").astype(np.float32) / 32768.0
    sys.exit(f"{path}: unsupported sample format {format_tag} with {bits} bits")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model, wav = sys.argv[1], sys.argv[2]
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model, sess_options=opts, providers=["CPUExecutionProvider"]
    )
    x = read_wav(wav)
    if len(x) % CHUNK:
        x = np.concatenate([x, np.zeros(CHUNK - len(x) % CHUNK, np.float32)])
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, CONTEXT), np.float32)
    sr = np.array(RATE, dtype=np.int64)
    out = []
    for i in range(0, len(x), CHUNK):
        chunk = np.concatenate([context, x[None, i : i + CHUNK]], axis=1)
        prob, state = session.run(None, {"input": chunk, "state": state, "sr": sr})
        context = chunk[:, -CONTEXT:]
        out.append(float(prob[0, 0]))
    json.dump({"chunk_samples": CHUNK, "probabilities": out}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
