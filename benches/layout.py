#!/usr/bin/env python3
"""Threads and workers on this machine: how whisper's thread count and the number of parallel
decodes should be laid out over the cores.

whisper.cpp (ggml) threads spin while they wait for each other at every barrier, so two
multi-threaded decodes that share the cores do not just time-share them: they can run many times
slower than one after the other. This bench measures that against the alternatives, alternating
the layouts round by round (the machine is noisy; only figures of one run are compared), and
prints the median wall and CPU seconds of each.

usage: benches/layout.py [--bin PATH] [--model tiny.en] [--rounds 3] [FILE]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def transcribe(binary, model, files, workers, threads, out):
    """One `callscribe transcribe` process (forwarding off: only transcription is timed)."""
    cmd = [binary, "--config", str(out / "bench.toml"), "transcribe", "--model", model,
           "--language", "en", "--workers", str(workers), "--threads", str(threads),
           "--format", "json", "-o", str(out)] + [str(f) for f in files]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(procs):
    """Waits for every process; wall seconds of the whole set and CPU seconds summed."""
    start = time.monotonic()
    cpu = 0.0
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit(f"error: callscribe exited {p.returncode}: {p.args}")
        cpu += usage.ru_utime + usage.ru_stime
    return time.monotonic() - start, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=str(REPO / "target/release/callscribe"))
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("file", nargs="?", default=str(REPO / "audio-fixtures/calls/en_call_8k.wav"))
    a = ap.parse_args()
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "callscribe-layout"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.toml").write_text("[forward]\nenabled = false\n")
    f = Path(a.file)
    copy = out / ("copy-" + f.name)  # a second recording: the same audio under another name
    copy.write_bytes(f.read_bytes())
    # name → (what it is, function starting its processes)
    layouts = {
        "1 file, 1 worker × 2 threads": lambda: [transcribe(a.bin, a.model, [f], 1, 2, out)],
        "1 file, 1 worker × 1 thread": lambda: [transcribe(a.bin, a.model, [f], 1, 1, out)],
        "2 files, 1 worker × 2 threads": lambda: [transcribe(a.bin, a.model, [f, copy], 1, 2, out)],
        "2 files, 2 workers × 1 thread": lambda: [transcribe(a.bin, a.model, [f, copy], 2, 1, out)],
        "2 processes at once, each 1 × 2 threads": lambda: [
            transcribe(a.bin, a.model, [f], 1, 2, out), transcribe(a.bin, a.model, [copy], 1, 2, out)],
        "2 processes at once, each 1 × 1 thread": lambda: [
            transcribe(a.bin, a.model, [f], 1, 1, out), transcribe(a.bin, a.model, [copy], 1, 1, out)],
    }
    walls = {k: [] for k in layouts}
    cpus = {k: [] for k in layouts}
    for r in range(a.rounds):
        for name, start in layouts.items():
            wall, cpu = timed(start())
            walls[name].append(wall)
            cpus[name].append(cpu)
            print(f"round {r + 1}: {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    base = statistics.median(walls["2 files, 1 worker × 2 threads"])
    print(f"model {a.model}, {f.name}, {os.cpu_count()} cores, median of {a.rounds} rounds\n")
    print("| layout | wall s | CPU s | wall vs 2 files on 1 × 2 |")
    print("|---|---|---|---|")
    for name in layouts:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"| {name} | {w:.1f} | {c:.1f} | {w / base:.2f}× |")


if __name__ == "__main__":
    main()
