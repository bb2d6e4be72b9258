#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, models, formatting, lints, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Builds shared between checkouts (CI clones afresh each time): keep the target dir outside.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/callscribe/target}"

# whisper-rs-sys does not notice when the GGML_* settings in .cargo/config.toml change, so a
# cached whisper.cpp build made without them would be kept: drop it.
for cache in "$CARGO_TARGET_DIR"/debug/build/whisper-rs-sys-*/out/build/CMakeCache.txt; do
    if [ -e "$cache" ] && ! grep -q '^GGML_LLAMAFILE:BOOL=ON' "$cache"; then
        echo "whisper.cpp was built without GGML_LLAMAFILE: rebuilding it"
        cargo clean -p whisper-rs-sys
        break
    fi
done

cargo fmt --all -- --check
cargo build --all-targets --locked
# The real models the integration tests run on (fetched and converted once, then cached).
# The binary just built, not `cargo run`: that builds without the dev-dependencies' features
# and so compiles the crate a second time (2.5 min here).
"$CARGO_TARGET_DIR/debug/callscribe" models pull tiny.en
"$CARGO_TARGET_DIR/debug/callscribe" models pull base
"$CARGO_TARGET_DIR/debug/callscribe" models pull silero-vad
cargo clippy --all-targets --locked -- -D warnings
# The independent gRPC client (tests/python/client.py, driven by tests/it/grpc_python.rs) needs
# grpcio, grpcio-tools and grpcio-health-checking, and the Silero VAD reference
# (tests/python/silero_ref.py, driven by tests/it/silero.rs) onnxruntime and numpy; the
# Hugging Face checkpoint and LoRA adapter writers (tests/python/hf_checkpoint.py, lora.py,
# driven by tests/it/models_import.rs) numpy and safetensors: a venv kept beside the build cache.
# The Google Speech and Riva drop-in services (tests/it/speech_apis.rs,
# tests/python/speech_clients.py) are driven by the real client libraries, google-cloud-speech
# and nvidia-riva-client, and reflection v1alpha by grpcio-reflection's client.
PYENV="${XDG_CACHE_HOME:-$HOME/.cache}/callscribe/pyenv"
if ! "$PYENV/bin/python" -c "import grpc, grpc_tools, grpc_health, onnxruntime, numpy, google.cloud.speech, riva.client, grpc_reflection, safetensors" 2>/dev/null; then
    if ! "$PYENV/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$PYENV"
        python3 -m venv "$PYENV" || {
            echo "error: python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)" >&2
            exit 1
        }
    fi
    "$PYENV/bin/python" -m pip install -q grpcio grpcio-tools grpcio-health-checking onnxruntime numpy \
        google-cloud-speech nvidia-riva-client grpcio-reflection safetensors
fi
export CALLSCRIBE_TEST_PYTHON="$PYENV/bin/python"

cargo test --locked -- --test-threads 2
