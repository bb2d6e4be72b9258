#!/usr/bin/env python3
"""The dialect table (issue #21): CER on real Mandarin speech with the putonghua adapter
against no adapter, at the native rate and through an 8 kHz μ-law telephone band, f16
against q8_0 weights; and the one Cantonese clip with the cantonese adapter against none
(stock `base` has no `yue` token: `--language yue` on it is refused, so both decode `zh`).

Real speech is read in place from the shared evaluation set (`--real`, its references.tsv);
nothing from it is copied into the project. The fixture `audio-fixtures/calls/zh_call_16k.wav`
(synthetic two-party call) is scored per channel against its reference JSON.

Each condition is one `callscribe transcribe` run over every file (the model loads once), as
a QA team runs it:

    callscribe [--config NO_ADAPTER] transcribe FILES --model base --weights W --language zh \
        [--dialect putonghua] --format json -o DIR --workers 1 --threads 2

"No adapter" is a configuration whose language → adapter map is empty, so `--language zh`
decodes plain whisper `zh`: no prompt, no hotwords, no normalisation (whisper may write
traditional characters, which the putonghua adapter's normalisation turns simplified).
The telephone band: sox, 300–3400 Hz, 8 kHz, G.711 μ-law, first channel.

    python3 benches/dialect_cer.py --bin target/release/callscribe [--real DIR]
"""
import argparse
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ROOT = benchlib.ROOT
FIXTURE = ROOT / "audio-fixtures" / "calls" / "zh_call_16k.wav"


def real_files(real, language):
    with open(real / "references.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(real / r["file"], r["reference"]) for r in rows if r["language"] == language]


def telephone(src, dst):
    subprocess.run(
        ["sox", str(src), "-r", "8000", "-e", "u-law", "-b", "8", str(dst),
         "remix", "1", "sinc", "300-3400"],
        check=True,
    )


def transcribe(binary, files, out, *, weights, language, adapter, config):
    cmd = [str(binary)]
    if config:
        cmd += ["--config", str(config)]
    cmd += ["transcribe", *map(str, files), "--model", "base", "--weights", weights,
            "--language", language, "--format", "json", "-o", str(out),
            "--workers", "1", "--threads", "2"]
    if adapter:
        cmd += ["--dialect", adapter]
    began = time.monotonic()
    run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)}:\n{run.stderr}")
    return time.monotonic() - began


def hypothesis(out, wav, channel=None):
    with open(out / (wav.stem + ".json"), encoding="utf-8") as f:
        t = json.load(f)
    segs = sorted(t["segments"], key=lambda s: s["start_ms"])
    return "".join(s["text"] for s in segs if channel is None or s["channel"] == channel)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/callscribe"))
    ap.add_argument("--real", default=str(ROOT.parent / "shared" / "eval-real-github"))
    ap.add_argument("--weights", default="f16,q8_0")
    args = ap.parse_args()
    real = pathlib.Path(args.real)
    zh = real_files(real, "zh")
    yue = real_files(real, "yue")
    with open(FIXTURE.with_suffix(".json"), encoding="utf-8") as f:
        fixture_ref = json.load(f)
    fixture_refs = {
        c: "".join(u["text"] for u in sorted(fixture_ref["utterances"], key=lambda u: u["start_ms"])
                   if u["channel"] == c)
        for c in (0, 1)
    }

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        no_adapter = tmp / "no-adapter.toml"
        no_adapter.write_text("[dialects]\ndetect_map = {}\n")
        band = {"native": {}, "8k μ-law": {}}
        (tmp / "tel").mkdir()
        for wav, _ in zh + yue + [(FIXTURE, None)]:
            band["native"][wav] = wav
            if wav == FIXTURE:  # both channels through the band, kept apart
                for c in (0, 1):
                    dst = tmp / "tel" / f"{wav.stem}_ch{c}.wav"
                    subprocess.run(["sox", str(wav), "-r", "8000", "-e", "u-law", "-b", "8", str(dst),
                                    "remix", str(c + 1), "sinc", "300-3400"], check=True)
                band["8k μ-law"][wav] = None
            else:
                dst = tmp / "tel" / wav.name
                telephone(wav, dst)
                band["8k μ-law"][wav] = dst

        rows = []
        for weights in args.weights.split(","):
            for band_name, files in band.items():
                for lang, adapter, refs in (("zh", "putonghua", zh), ("zh", None, zh),
                                            ("zh", "cantonese", yue), ("zh", None, yue)):
                    if refs is yue and band_name != "native":
                        continue
                    out = tmp / f"out-{weights}-{band_name[:2]}-{lang}-{adapter}"
                    inputs = [files[w] for w, _ in refs]
                    fixture_inputs = []
                    if refs is zh:
                        if band_name == "native":
                            fixture_inputs = [FIXTURE]
                        else:
                            fixture_inputs = [tmp / "tel" / f"{FIXTURE.stem}_ch{c}.wav" for c in (0, 1)]
                    secs = transcribe(args.bin, inputs + fixture_inputs, out, weights=weights,
                                      language=lang, adapter=adapter,
                                      config=None if adapter else no_adapter)
                    edits = n = 0
                    per_file = []
                    for (wav, ref), inp in zip(refs, inputs):
                        e, k = benchlib.error_counts(ref, hypothesis(out, inp), "char")
                        edits, n = edits + e, n + k
                        per_file.append((wav.name, e, k))
                    fx = (0, 0)
                    if refs is zh:
                        for c in (0, 1):
                            if band_name == "native":
                                hyp = hypothesis(out, FIXTURE, c)
                            else:
                                hyp = hypothesis(out, fixture_inputs[c])
                            e, k = benchlib.error_counts(fixture_refs[c], hyp, "char")
                            fx = (fx[0] + e, fx[1] + k)
                    rows.append({
                        "weights": weights, "band": band_name,
                        "set": "Mandarin (real)" if refs is zh else "Cantonese (real)",
                        "adapter": adapter or f"none (whisper `{lang}`)",
                        "edits": edits, "chars": n, "fixture": fx, "secs": secs,
                        "per_file": per_file,
                    })
                    print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr)

    print("| set | band | weights | adapter | real speech CER % (chars) | zh_call_16k fixture CER % | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fx = f"{100 * r['fixture'][0] / r['fixture'][1]:.1f}" if r["fixture"][1] else "–"
        print(f"| {r['set']} | {r['band']} | {r['weights']} | {r['adapter']} | "
              f"{100 * r['edits'] / r['chars']:.1f} ({r['chars']}) | {fx} | {r['secs']:.0f} |")
    print()
    print("Per file (CER %), each condition:")
    for r in rows:
        print(f"- {r['weights']} {r['band']} {r['adapter']}: " + ", ".join(
            f"{name.split('_', 1)[1].rsplit('_', 1)[0]} {100 * e / k:.0f}" for name, e, k in r["per_file"]))


if __name__ == "__main__":
    main()
