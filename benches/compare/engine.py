#!/usr/bin/env python3
"""One measured run of a peer engine, as its own process (started by compare.py).

Why a separate process per run: peak RSS (ru_maxrss) and CPU time are per process, so each
engine's run must be a fresh child with nothing else loaded — compare.py reads them from
os.wait4. This script loads the model once, transcribes every given 16 kHz mono WAV in order
(the channels of a stereo call, split by compare.py), and writes the segments and its own
load/transcribe split as JSON. Runs under the comparison venv's Python (faster-whisper,
pywhispercpp), never under the harness's.

usage: engine.py fw --ct2 DIR --compute int8|float32 [--vad] ...  --out R.json WAV...
       (--language auto: faster-whisper detects the language; each file's info.language and
       info.language_probability go into the JSON either way)
       engine.py whispercpp --ggml FILE ...                       --out R.json WAV...
"""
import argparse
import json
import time


def faster_whisper(args):
    """Greedy (beam 1, best_of 1), temperature 0 only (a single temperature: no fallback),
    no previous-text conditioning (callscribe decodes utterances independently), Silero VAD on
    or off, segment timestamps but no word timestamps (faster-whisper's defaults)."""
    import ctranslate2
    import faster_whisper
    from faster_whisper import WhisperModel

    t0 = time.perf_counter()
    model = WhisperModel(args.ct2, device="cpu", compute_type=args.compute,
                         cpu_threads=args.threads, num_workers=1)
    load = time.perf_counter() - t0
    files = []
    for wav in args.wavs:
        # --language auto: faster-whisper detects it (info.language) from the first 30 s (of
        # speech, with the VAD on).
        segs, info = model.transcribe(wav, language=None if args.language == "auto" else args.language,
                                   beam_size=1, best_of=1,
                                   temperature=0.0, condition_on_previous_text=False,
                                   initial_prompt=args.prompt or None, vad_filter=args.vad,
                                   word_timestamps=False)
        files.append({"wav": wav, "segments": [
            {"start_ms": round(s.start * 1000), "end_ms": round(s.end * 1000), "text": s.text.strip()}
            for s in segs],  # the generator decodes as it is consumed
            "language": info.language, "language_probability": info.language_probability,
            "duration_after_vad_s": getattr(info, "duration_after_vad", None)})
    return files, load, {"faster-whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__}


def whispercpp(args):
    """whisper.cpp's own long-audio path (whisper_full over the whole file, 30 s windows, no
    VAD: its VAD needs a ggml Silero model that no registry package ships), greedy best_of 1,
    temperature 0 with temperature_inc 0 (no fallback), no context carried between windows,
    token timestamps on and non-speech tokens suppressed as callscribe sets them."""
    import importlib.metadata
    import _pywhispercpp
    from pywhispercpp.model import Model

    t0 = time.perf_counter()
    model = Model(args.ggml, n_threads=args.threads, redirect_whispercpp_logs_to=None,
                  print_progress=False, print_realtime=False, print_timestamps=False)
    load = time.perf_counter() - t0
    files = []
    for wav in args.wavs:
        segs = model.transcribe(wav, language=args.language, greedy={"best_of": 1},
                                beam_search={"beam_size": -1, "patience": -1.0},
                                temperature=0.0, temperature_inc=0.0, no_context=True,
                                suppress_blank=True, suppress_nst=True, token_timestamps=True,
                                initial_prompt=args.prompt or "")
        # pywhispercpp's t0/t1 are whisper.cpp's centiseconds.
        files.append({"wav": wav, "segments": [
            {"start_ms": s.t0 * 10, "end_ms": s.t1 * 10, "text": s.text.strip()} for s in segs]})
    # The bundled whisper.cpp states its version only in its library's file name
    # (pywhispercpp.libs/libwhisper-HASH.so.1.8.5).
    libs = [f.name.split(".so.")[-1] for f in importlib.metadata.files("pywhispercpp") or []
            if f.name.startswith("libwhisper") and ".so." in f.name]
    versions = {"pywhispercpp": importlib.metadata.version("pywhispercpp"),
                "whisper.cpp": max(libs, key=len) if libs else "unknown",
                "system_info": _pywhispercpp.whisper_print_system_info()}
    return files, load, versions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["fw", "whispercpp"])
    ap.add_argument("--ct2")
    ap.add_argument("--compute", default="int8")
    ap.add_argument("--vad", action="store_true")
    ap.add_argument("--ggml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--language", default="en")
    ap.add_argument("--prompt", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("wavs", nargs="+")
    args = ap.parse_args()
    t0 = time.perf_counter()
    files, load, versions = (faster_whisper if args.engine == "fw" else whispercpp)(args)
    total = time.perf_counter() - t0
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"files": files, "load_s": load, "transcribe_s": total - load, "versions": versions},
                  f, ensure_ascii=False)


if __name__ == "__main__":
    main()
