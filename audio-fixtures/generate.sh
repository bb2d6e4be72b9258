#!/usr/bin/env bash
# Regenerates the audio fixtures (see README.md here). `generate.sh long DIR` makes the
# 10-minute call (not committed).
set -euo pipefail
exec python3 "$(dirname "$0")/generate.py" "$@"
