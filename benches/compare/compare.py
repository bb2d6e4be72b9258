#!/usr/bin/env python3
"""End-to-end comparison of callscribe with faster-whisper and whisper.cpp (issue #7).

Same audio, same weights (callscribe's ggml file for whisper.cpp; the CTranslate2 files it was
converted from for faster-whisper), same thread count, greedy decoding, same language. Every run
of every engine is its own child process, so wall time, CPU time (user + sys) and peak RSS are
that engine's alone (os.wait4). Engines alternate run by run (A B C A B C …) so that drift in
the machine's load hits them alike. Reports medians per engine and file, ratios to callscribe,
and word (English) or character (Chinese) error rates against the fixtures' references.

The harness itself needs only the standard library; the peer engines run under a venv it makes
in the cache dir (faster-whisper, pywhispercpp), through benches/compare/engine.py.

usage: python3 benches/compare/compare.py [--bin target/release/callscribe] [--models base,tiny.en]
           [--runs 5] [--threads 2] [--engines ...] [--long] [--conditions] [--json OUT] [FIXTURE.wav ...]
See benches/compare/README.md.
"""
import argparse
import datetime
import difflib
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import wave

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchlib  # noqa: E402

ROOT = benchlib.ROOT
PEER_PACKAGES = ["faster-whisper==1.2.1", "pywhispercpp==1.5.1"]
DEFAULT_FIXTURES = ["audio-fixtures/calls/en_call_8k.wav", "audio-fixtures/calls/en_call_8k_mono.wav",
                    "audio-fixtures/calls/zh_call_16k.wav"]
LONG = ["long_call40_8k.wav", "long_call40_8k_mono.wav"]  # generate.py long40
# Real-call conditions (issue #15, generate.py conditions): --conditions.
CONDITIONS = [f"audio-fixtures/conditions/{n}.wav" for n in (
    "hold_music_8k", "music_only_8k", "dtmf_hum_noise_8k", "echo_18db_8k", "echo_24db_8k", "echo_30db_8k",
    "same_channels_8k", "same_channels_16k", "overlap_8k", "zh_hold_music_8k")]
CONDITIONS_ENGINES = "callscribe,fw-int8"  # fw-int8: faster-whisper with its Silero VAD (vad_filter=True)
# Segments outside speech: a segment is inside speech when its overlap with the reference
# utterances (of its own channel; of any channel on mono and identical-channel files) is at
# least half its duration or at least this long; otherwise it is outside.
INSIDE_MIN_OVERLAP_MS = 300
# Duplicates across channels: two segments on different channels whose times overlap (give or
# take this tolerance, for timestamp jitter) and whose normalised texts are this similar.
DUP_TOLERANCE_MS = 500
DUP_SIMILARITY = 0.8
# name → (kind, options). callscribe is the baseline every ratio is taken against.
ENGINES = {
    # callscribe as a user runs it: catalogue models at its default weights (q8_0 since
    # 2026-11-27 evening; written from the f16 file on first use).
    "callscribe": ("callscribe", {}),
    # The published f16 file, the same ggml file whisper.cpp's binding loads.
    "callscribe-f16": ("callscribe", {"weights": "f16"}),
    "callscribe-fit": ("callscribe", {"fit_window": True}),
    "callscribe-nopack": ("callscribe", {"pack": False}),
    # The store's NAME-q8_0 by name (what "callscribe" meant for q8_0 before the default moved).
    "callscribe-q8": ("callscribe", {"quant": "q8_0"}),
    # The binary given by --alt-bin (another build of callscribe, e.g. other ggml flags). Builds
    # before 2026-11-27 evening run f16 by default and have no --weights.
    "callscribe-alt": ("callscribe", {"alt": True}),
    "callscribe-alt-q8": ("callscribe", {"alt": True, "quant": "q8_0"}),
    "fw-int8": ("fw", {"compute": "int8", "vad": True}),
    "fw-f32": ("fw", {"compute": "float32", "vad": True}),
    "fw-int8-novad": ("fw", {"compute": "int8", "vad": False}),
    "fw-f32-novad": ("fw", {"compute": "float32", "vad": False}),
    "whispercpp": ("whispercpp", {}),
}
DEFAULT_ENGINES = "callscribe,fw-int8,fw-f32,fw-int8-novad,fw-f32-novad,whispercpp"


def ensure_venv(cache):
    """The peers' venv, made once: wheels only first; pywhispercpp from its sdist if no wheel fits
    (a whisper.cpp build: slow, so niced)."""
    venv = cache / "venv"
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import faster_whisper, pywhispercpp.model"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if subprocess.run(pip + ["--only-binary=:all:"] + PEER_PACKAGES).returncode != 0:
        subprocess.run(["nice", "-n", "10"] + pip + PEER_PACKAGES, check=True)
    subprocess.run(check, check=True)
    return py


def load_reference(wav, language="en"):
    """The fixture's reference JSON; a WAV without one (recordings of your own, `--meeting`) is
    timed and its words counted, but gets no error rate."""
    path = wav.with_suffix(".json")
    ref = (json.loads(path.read_text(encoding="utf-8")) if path.exists()
           else {"language": language, "utterances": [], "unscored": True})
    with wave.open(str(wav), "rb") as w:
        ref["audio_s"] = w.getnframes() / w.getframerate()
        ref["channels"] = w.getnchannels()
    return ref


def split_channels(wav, channels, work, mix=False):
    """16 kHz mono 16-bit WAV per channel, made with sox before any timing. The peers take one
    channel per call (faster-whisper would mix a stereo file down, pywhispercpp reads only
    16 kHz WAVs), so a stereo call is two inputs, transcribed in one process, one after the
    other; callscribe reads the original file and splits and resamples it itself. mix=True (files whose
    channels hold the same audio, --conditions): one 16 kHz mono mix-down (the channels
    averaged), which is what faster-whisper makes of a stereo file by itself."""
    if mix and channels > 1:
        dst = work / f"{wav.stem}_mix_16k.wav"
        if not dst.exists():
            subprocess.run(["sox", "-R", "-D", str(wav), "-r", "16000", "-c", "1", "-b", "16", str(dst),
                            "remix", ",".join(f"{c + 1}v{1 / channels}" for c in range(channels))], check=True)
        return [dst]
    out = []
    for c in range(channels):
        dst = work / f"{wav.stem}_ch{c}_16k.wav"
        if not dst.exists():
            subprocess.run(["sox", "-R", "-D", str(wav), "-r", "16000", "-c", "1", "-b", "16", str(dst),
                            "remix", str(c + 1)], check=True)
        out.append(dst)
    return out


def peer_prompt(language):
    """What callscribe's dialect adapter prompts with for this language (putonghua for zh: a
    simplified-character prompt, without which base writes traditional characters), given to the
    peers too so all decode from the same prompt. English adapters have none."""
    with open(ROOT / "models" / "dialects" / "putonghua.toml", "rb") as f:
        zh = tomllib.load(f)["prompt"]
    return zh if language == "zh" else ""


def measure(cmd, env, log):
    """Runs one child; returns wall s, CPU s (user + sys), peak RSS MiB, exit code."""
    t0 = time.perf_counter()
    with open(log, "w") as err:
        p = subprocess.Popen(cmd, stdout=err, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode


def hypothesis_by_channel(kind, out_file, n_channels):
    """Text per channel, segments in time order (mono: one channel holding everything)."""
    data = json.loads(out_file.read_text(encoding="utf-8"))
    if kind == "callscribe":
        segs = sorted(data["segments"], key=lambda s: (s["start_ms"], s["channel"]))
        text = [" ".join(s["text"] for s in segs if s["channel"] == c) for c in range(n_channels)]
        raw = [" ".join(s["raw_text"] for s in segs if s["channel"] == c) for c in range(n_channels)]
        return text, raw, data
    text = [" ".join(s["text"] for s in f["segments"]) for f in data["files"]]
    return text, None, data


def score(ref, texts, language):
    """Edits and reference tokens per channel (stereo: each channel against its own
    utterances; mono: all utterances in time order against the whole transcript). A reference
    without words (the no-speech fixtures) has no rate: the words written show what was made up."""
    unit = benchlib.error_unit(language)
    if ref.get("unscored"):
        return {"unit": "CER" if unit == "char" else "WER", "rate": None, "per_channel": []}
    per = []
    for c, hyp in enumerate(texts):
        reference = " ".join(u["text"] for u in sorted(ref["utterances"], key=lambda u: u["start_ms"])
                             if u["channel"] == c)
        per.append(benchlib.error_counts(reference, hyp, unit))
    edits, n = sum(e for e, _ in per), sum(n for _, n in per)
    return {"unit": "CER" if unit == "char" else "WER", "rate": edits / n if n else None,
            "per_channel": [e / n if n else 0.0 for e, n in per]}


def segments_of(kind, data):
    """Every segment as (channel, start_ms, end_ms, text), read defensively (the peers: one
    input file per channel, or one mix-down)."""
    if kind == "callscribe":
        return [(s.get("channel", 0), s.get("start_ms", 0), s.get("end_ms", 0), s.get("text", ""))
                for s in data.get("segments", [])]
    return [(c, s["start_ms"], s["end_ms"], s["text"]) for c, f in enumerate(data["files"]) for s in f["segments"]]


def merged_texts(segs):
    """All segments in time order as one text (identical-channel files: the channel does not matter)."""
    return [" ".join(t for _, _, _, t in sorted(segs, key=lambda s: (s[1], s[0])))]


def detected_language(kind, data):
    """(language, probability or None, how) as the engine reports it. callscribe: the
    transcript's top-level `language`, and `language_probability` or
    `language_source.probability` where present (`language_source.kind`: detected, configured,
    no_speech, …). faster-whisper: info.language / info.language_probability per input file,
    joined with '/' when the channels disagree (the lowest probability)."""
    if kind == "callscribe":
        src = data.get("language_source") if isinstance(data.get("language_source"), dict) else {}
        prob = data.get("language_probability", src.get("probability"))
        return data.get("language") or "", prob, src.get("kind", "")
    langs = [f.get("language") or "" for f in data.get("files", [])]
    probs = [f.get("language_probability") for f in data.get("files", []) if f.get("language_probability") is not None]
    uniq = list(dict.fromkeys(langs))
    return "/".join(uniq), (min(probs) if probs else None), "detected"


def vad_cpu_s(data):
    """callscribe's VAD CPU time, if its JSON reports one (a numeric key naming the VAD and CPU
    at the top level or under timings/stats/metrics/profile/vad); None otherwise (today)."""
    for key in (None, "timings", "stats", "metrics", "profile", "vad"):
        holder = data if key is None else data.get(key)
        if not isinstance(holder, dict):
            continue
        for k, v in holder.items():
            name = (key or "") + "_" + k.lower()
            if "vad" in name and "cpu" in name and isinstance(v, (int, float)):
                return float(v) / (1000 if name.endswith("_ms") else 1)
    return None


def condition_metrics(segs, ref, language):
    """Segments outside speech, duplicates across channels (definitions at the top)."""
    unit = benchlib.error_unit(language)
    same = bool(ref.get("identical_channels")) or ref["channels"] == 1
    spans = {}
    for u in ref["utterances"]:
        spans.setdefault(None if same else u["channel"], []).append((u["start_ms"], u["end_ms"]))
    segs = [s for s in segs if benchlib.tokens(s[3], unit)]
    outside, outside_words = [], 0
    for ch, a, b, text in segs:
        ov = sum(max(0, min(b, e) - max(a, st)) for st, e in spans.get(None if same else ch, []))
        if not (ov >= INSIDE_MIN_OVERLAP_MS or ov >= 0.5 * max(1, b - a)):
            outside.append({"channel": ch, "start_ms": a, "end_ms": b, "text": text})
            outside_words += len(benchlib.tokens(text, unit))
    sep = " " if unit == "word" else ""
    dups = []
    for i, x in enumerate(segs):
        for y in segs[i + 1:]:
            if x[0] == y[0] or min(x[2], y[2]) + DUP_TOLERANCE_MS < max(x[1], y[1]):
                continue
            sim = difflib.SequenceMatcher(None, sep.join(benchlib.tokens(x[3], unit)),
                                          sep.join(benchlib.tokens(y[3], unit)), autojunk=False).ratio()
            if sim >= DUP_SIMILARITY:
                dups.append({"a": list(x), "b": list(y), "similarity": round(sim, 3)})
    return {"segments": len(segs), "outside": len(outside), "outside_words": outside_words,
            "outside_segments": outside, "duplicates": len(dups), "duplicate_pairs": dups}


def engine_cmd(name, args, job, run_dir, venv_py):
    kind, opt = ENGINES[name]
    out = run_dir / "out.json"
    if kind == "callscribe":
        cfg = run_dir / "callscribe.toml"
        # Greedy, no temperature fallback; forwarding off (the kb sink and its spool are not
        # transcription); no auto pull (the store is already provisioned).
        cfg.write_text("[models]\nauto_pull = false\n[decode]\nbeam_size = 1\ntemperature_fallback = false\n"
                       f"fit_window = {'true' if opt.get('fit_window') else 'false'}\n[forward]\nenabled = false\n"
                       f"[transcribe]\npack = {'false' if opt.get('pack') is False else 'true'}\n")
        model = f"{job['model']}-{opt['quant']}" if opt.get("quant") else job["model"]
        # The same cores as every other engine: --threads N is states × threads per state.
        states = max(1, min(args.threads, args.alt_states if opt.get("alt") else args.states))
        cmd = [args.alt_bin if opt.get("alt") else args.bin, "--config", str(cfg), "transcribe", str(job["wav"]), "--model", model,
               "--language", job["run_language"], "--format", "json", "--workers", str(states),
               "--threads", str(max(1, args.threads // states)), "-o", str(run_dir / "cs")]
        if opt.get("weights"):
            cmd += ["--weights", opt["weights"]]
        return kind, cmd, run_dir / "cs" / f"{job['wav'].stem}.json"
    common = ["--threads", str(args.threads), "--language", job["run_language"], "--out", str(out)]
    if job["prompt"]:
        common += ["--prompt", job["prompt"]]
    if kind == "fw":
        cmd = [str(venv_py), str(HERE / "engine.py"), "fw", "--ct2", str(job["ct2"]),
               "--compute", opt["compute"]] + (["--vad"] if opt["vad"] else []) + common
    else:
        cmd = [str(venv_py), str(HERE / "engine.py"), "whispercpp", "--ggml", str(job["ggml"])] + common
    return kind, cmd + [str(p) for p in job["mono"]], out


def summarise(runs, engines):
    rows = []
    keys = []
    for r in runs:
        k = (r["file"], r["model"])
        if k not in keys:
            keys.append(k)
    for file, model in keys:
        base = None
        for name in engines:
            rs = [r for r in runs if (r["file"], r["model"], r["engine"]) == (file, model, name) and r["ok"]]
            if not rs:
                continue
            med = lambda f: statistics.median(r[f] for r in rs)  # noqa: E731
            row = {"file": file, "model": model, "engine": name, "runs": len(rs), "wall_s": med("wall_s"),
                   "cpu_s": med("cpu_s"), "rss_mib": med("rss_mib"), "rtf": med("rtf"),
                   "err_unit": rs[0]["error"]["unit"],
                   "err": None if rs[0]["err"] is None else med("err"), "tokens": med("tokens")}
            if "conditions" in rs[0]:
                cm = [r["conditions"] for r in rs]
                row.update(segments=statistics.median(c["segments"] for c in cm),
                           outside=statistics.median(c["outside"] for c in cm),
                           outside_words=statistics.median(c["outside_words"] for c in cm),
                           duplicates=statistics.median(c["duplicates"] for c in cm),
                           language=rs[0]["language"], language_probability=rs[0]["language_probability"],
                           language_how=rs[0]["language_how"], channels=rs[0]["channels"])
                vads = [r["vad_cpu_s"] for r in rs if r.get("vad_cpu_s") is not None]
                if vads:
                    row["vad_cpu_s"] = statistics.median(vads)
            if name == "callscribe":
                base = row
            if base:
                row.update(wall_x=row["wall_s"] / base["wall_s"], cpu_x=row["cpu_s"] / base["cpu_s"],
                           rss_x=row["rss_mib"] / base["rss_mib"])
            rows.append(row)
    return rows


def markdown(rows):
    lines = ["| file | model | engine | runs | wall s | CPU s | peak RSS MiB | RTF | error | words | wall ×cs | CPU ×cs | RSS ×cs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        x = lambda k: f"{r[k]:.2f}" if k in r else "–"  # noqa: E731
        error = "–" if r["err"] is None else f"{r['err_unit']} {r['err']:.3f}"
        lines.append(f"| {r['file']} | {r['model']} | {r['engine']} | {r['runs']} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['rss_mib']:.0f} | {r['rtf']:.3f} | {error} | {r['tokens']:.0f} | "
                     f"{x('wall_x')} | {x('cpu_x')} | {x('rss_x')} |")
    return "\n".join(lines)


def markdown_conditions(rows):
    """The --conditions table: what each engine wrote where there is no speech."""
    rows = [r for r in rows if "outside" in r]
    if not rows:
        return ""
    vad = any("vad_cpu_s" in r for r in rows)
    lines = ["| file | engine | segments | outside speech (words) | duplicates across channels | language (p) | error | words |"
             + (" VAD CPU s |" if vad else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if vad else "")]
    for r in rows:
        p = r["language_probability"]
        lang = (r["language"] or "–") + (f" ({p:.2f})" if isinstance(p, (int, float)) else "") + \
            (f" {r['language_how']}" if r["language_how"] not in ("", "detected") else "")
        error = "–" if r["err"] is None else f"{r['err_unit']} {r['err']:.3f}"
        dup = f"{r['duplicates']:.0f}" if r["channels"] > 1 else "–"
        lines.append(f"| {r['file']} | {r['engine']} | {r['segments']:.0f} | {r['outside']:.0f} ({r['outside_words']:.0f}) | "
                     f"{dup} | {lang} | {error} | {r['tokens']:.0f} |" +
                     (f" {r['vad_cpu_s']:.2f} |" if "vad_cpu_s" in r else " – |" if vad else ""))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixtures", nargs="*", help=f"WAVs with a reference JSON beside them (default: {', '.join(DEFAULT_FIXTURES)})")
    ap.add_argument("--bin", default=str(ROOT / "target/release/callscribe"), help="callscribe binary")
    ap.add_argument("--alt-bin", help="a second callscribe binary, run as the engines callscribe-alt*")
    ap.add_argument("--models", default=None,
                    help="models to run (default tiny.en,base; base with --conditions); English-only ones "
                         "(.en) are skipped on non-English files")
    ap.add_argument("--engines", default=None,
                    help=f"comma-separated, from {', '.join(ENGINES)} (default {DEFAULT_ENGINES}; "
                         f"{CONDITIONS_ENGINES} with --conditions)")
    ap.add_argument("--conditions", action="store_true",
                    help="add the real-call-conditions fixtures (audio-fixtures/conditions: hold music, DTMF, hum, "
                         "echo, identical channels, overlap), languages detected, not given; reports segments "
                         "outside speech, detected language, duplicates across channels (see README)")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per engine per file (medians)")
    ap.add_argument("--warmup", type=int, default=0, help="unmeasured rounds first (page cache)")
    ap.add_argument("--threads", type=int, default=2, help="inference threads (cores) for every engine")
    ap.add_argument("--states", type=int, default=0,
                    help="callscribe's whisper states, sharing --threads among them (default: one "
                         "single-threaded state per thread, its batch default; 1 = one state with every thread)")
    ap.add_argument("--alt-states", type=int, default=1,
                    help="the same for --alt-bin (default 1: builds before 2026-11-27 decode a file on one state)")
    ap.add_argument("--long", action="store_true",
                    help="add the 10-minute call (stereo and mono, 8 kHz), generated into the cache on first use")
    ap.add_argument("--long-only", default="", help="with --long: only this variant (stereo or mono)")
    ap.add_argument("--meeting", action="store_true",
                    help="add 7.5 min of real recorded conversation, 8 kHz telephone band, without a reference "
                         "(words are counted, not scored); built into the cache on first use")
    ap.add_argument("--language", default="en", help="language of WAVs given without a reference JSON")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/callscribe-compare"),
                    help="venv, CTranslate2 dirs, split channels, long recording")
    ap.add_argument("--store", help="callscribe model store (default: $CALLSCRIBE_MODELS or ~/.local/share/callscribe/models)")
    ap.add_argument("--json", help="raw results file (default: CACHE/results-TIMESTAMP.json)")
    ap.add_argument("--note", default="", help="free text kept in the JSON (e.g. 'machine shared')")
    args = ap.parse_args()
    args.states = args.states or args.threads
    args.models = args.models or ("base" if args.conditions else "tiny.en,base")
    args.engines = args.engines or (CONDITIONS_ENGINES if args.conditions else DEFAULT_ENGINES)

    engines = args.engines.split(",")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        sys.exit(f"unknown engine(s) {unknown}; known: {', '.join(ENGINES)}")
    if "callscribe" in engines:  # the baseline first in every round
        engines = ["callscribe"] + [e for e in engines if e != "callscribe"]
    args.bin = str(pathlib.Path(args.bin).resolve())
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} not found: cargo build --release (or pass --bin)")
    for tool in ("sox",):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found; run scripts/setup.sh")
    cache = pathlib.Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    venv_py = ensure_venv(cache) if any(ENGINES[e][0] != "callscribe" for e in engines) else None

    fixtures = [pathlib.Path(f) for f in (args.fixtures or ([] if args.long or args.meeting or args.conditions
                                                           else DEFAULT_FIXTURES))]
    fixtures += [ROOT / f for f in CONDITIONS] if args.conditions else []
    fixtures = [f if f.is_absolute() else (pathlib.Path.cwd() / f) for f in fixtures]
    if args.long:
        long_dir = cache / "long"
        if not all((long_dir / n).exists() for n in LONG):
            subprocess.run(["nice", "-n", "10", sys.executable, str(ROOT / "audio-fixtures/generate.py"), "long40",
                            str(long_dir)], check=True)
        fixtures += [long_dir / n for n in LONG if not args.long_only or
                     (args.long_only == "mono") == n.endswith("_mono.wav")]

    if args.meeting:
        meeting = cache / "long" / "meeting_8k_mono.wav"
        if not meeting.exists():
            subprocess.run(["nice", "-n", "10", sys.executable, str(ROOT / "audio-fixtures/generate.py"), "meeting",
                            str(meeting.parent)], check=True)
        fixtures.append(meeting)

    work = cache / "channels"
    work.mkdir(exist_ok=True)
    jobs = []
    for wav in fixtures:
        ref = load_reference(wav, args.language)
        language = ref["language"]
        for model in args.models.split(","):
            if model.endswith(".en") and language not in ("en", ""):
                continue
            # --conditions: every engine detects the language (callscribe --language auto,
            # faster-whisper language=None); the zh prompt still goes to the peers on a zh file,
            # as callscribe's adapter prompts once it has detected zh (detection does not see it).
            jobs.append({"wav": wav, "ref": ref, "model": model, "language": language,
                         "run_language": "auto" if args.conditions else language,
                         "prompt": peer_prompt(language),
                         "mono": split_channels(wav, ref["channels"], work,
                                                mix=args.conditions and bool(ref.get("identical_channels"))),
                         "ggml": benchlib.ggml_path(model, args.store)
                         if any(ENGINES[e][0] == "whispercpp" for e in engines) else None,
                         "ct2": benchlib.ct2_dir(model, cache, str(venv_py or sys.executable))
                         if any(ENGINES[e][0] == "fw" for e in engines) else None})

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="compare-"))
    runs, versions = [], {}
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    for job in jobs:
        label = job["wav"].name
        for rnd in range(args.warmup + args.runs):
            measured = rnd >= args.warmup
            for name in engines:
                run_dir = tmp / f"{job['wav'].stem}-{job['model']}-{name}-{rnd}"
                run_dir.mkdir()
                kind, cmd, out_file = engine_cmd(name, args, job, run_dir, venv_py)
                load_before = os.getloadavg()[0]
                wall, cpu, rss, rc = measure(cmd, env, run_dir / "log.txt")
                rec = {"file": label, "model": job["model"], "engine": name, "round": rnd - args.warmup,
                       "warmup": not measured, "ok": rc == 0 and out_file.exists(), "exit": rc,
                       "wall_s": wall, "cpu_s": cpu, "rss_mib": rss, "rtf": wall / job["ref"]["audio_s"],
                       "audio_s": job["ref"]["audio_s"], "channels": job["ref"]["channels"],
                       "loadavg_1m_before": load_before, "cmd": cmd}
                if rec["ok"]:
                    texts, raw, data = hypothesis_by_channel(kind, out_file, job["ref"]["channels"])
                    if args.conditions:
                        segs = segments_of(kind, data)
                        if job["ref"].get("identical_channels"):
                            texts = merged_texts(segs)  # the channel does not matter
                            raw = None if raw is None else merged_texts(
                                [(s.get("channel", 0), s.get("start_ms", 0), 0, s.get("raw_text", ""))
                                 for s in data.get("segments", [])])
                        rec["conditions"] = condition_metrics(segs, job["ref"], job["language"])
                        rec["language"], rec["language_probability"], rec["language_how"] = detected_language(kind, data)
                        rec["vad_cpu_s"] = vad_cpu_s(data) if kind == "callscribe" else None
                    rec["error"] = score(job["ref"], texts, job["language"])
                    rec["err"] = rec["error"]["rate"]
                    # Words (characters for Chinese) written: on audio without a reference, an
                    # engine that drops speech shows here.
                    rec["tokens"] = sum(len(benchlib.tokens(t, benchlib.error_unit(job["language"]))) for t in texts)
                    if args.conditions:  # every segment with its times, for reading the failures
                        rec["segments"] = [list(s) for s in segs]
                    if raw is not None:  # callscribe: before its adapter's normalisation too
                        rec["error_raw_text"] = score(job["ref"], raw, job["language"])
                    if kind != "callscribe":
                        rec["load_s"], rec["transcribe_s"] = data["load_s"], data["transcribe_s"]
                        versions[kind] = data["versions"]
                    if rnd == args.warmup:  # keep one transcript per engine and file
                        rec["text"] = texts
                else:
                    rec["log_tail"] = (run_dir / "log.txt").read_text(errors="replace")[-2000:]
                runs.append(rec)
                status = (f"FAILED (exit {rc})" if not rec["ok"] else f"{rec['tokens']} words, no reference"
                          if rec["err"] is None else f"{rec['error']['unit']} {rec['err']:.3f}")
                if rec["ok"] and "conditions" in rec:
                    c = rec["conditions"]
                    status += (f"  outside {c['outside']}/{c['segments']}  dups {c['duplicates']}  "
                               f"lang {rec['language']}")
                print(f"{'warmup' if not measured else 'run'} {rnd - args.warmup + 1:>2} {label} {job['model']:8} "
                      f"{name:14} wall {wall:7.1f} s  cpu {cpu:7.1f} s  rss {rss:6.0f} MiB  {status}",
                      file=sys.stderr, flush=True)
    measured_runs = [r for r in runs if not r["warmup"]]
    rows = summarise(measured_runs, engines)
    versions["callscribe"] = subprocess.run([args.bin, "--version"], capture_output=True, text=True).stdout.strip()
    result = {"started": started, "note": args.note, "threads": args.threads, "engines": engines,
              "conditions": {"inside_min_overlap_ms": INSIDE_MIN_OVERLAP_MS, "inside_min_fraction": 0.5,
                             "dup_similarity": DUP_SIMILARITY, "dup_tolerance_ms": DUP_TOLERANCE_MS,
                             "language": "detected"} if args.conditions else None,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                       if l.startswith("model name")), "")},
              "versions": versions, "summary": rows, "runs": runs}
    out = pathlib.Path(args.json or cache / f"results-{started.replace(':', '')}.json")
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(markdown(rows))
    if args.conditions:
        print("\n" + markdown_conditions(rows))
    print(f"\nraw runs: {out}", file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if all(r["ok"] for r in runs) else 1)


if __name__ == "__main__":
    main()
