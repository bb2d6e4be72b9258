#!/usr/bin/env bash
# Regenerates proto/vendor/: the public API definitions of the speech APIs `callscribe serve`
# also answers (issue #19), taken unchanged from the packages that publish them.
#   - Google Cloud Speech-to-Text v1: npm @google-cloud/speech (its build/protos), with the
#     google.api / google.longrunning / google.rpc files it imports from npm google-gax.
#   - NVIDIA Riva ASR: PyPI nvidia-riva-client ships no .proto text, only the compiled
#     descriptors in riva/client/proto/*_pb2.py; they are written out as one
#     FileDescriptorSet (riva/riva_asr.binpb), which build.rs compiles like the .proto files.
# Needs npm, and a Python with pip (CALLSCRIBE_PYTHON, default python3). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
SPEECH_NPM=@google-cloud/speech@7.5.0
GAX_NPM=google-gax@5.0.8
RIVA_PYPI=nvidia-riva-client==2.28.0
PY=${CALLSCRIBE_PYTHON:-python3}
out=proto/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$SPEECH_NPM" "$GAX_NPM" >/dev/null)
mkdir -p "$tmp/speech" "$tmp/gax"
tar xzf "$tmp"/google-cloud-speech-*.tgz -C "$tmp/speech"
tar xzf "$tmp"/google-gax-*.tgz -C "$tmp/gax"
rm -rf "$out/google" "$out/riva"
copy() { # root file...
    local root=$1
    shift
    for f in "$@"; do
        install -D -m 644 "$root/package/build/protos/$f" "$out/$f"
    done
}
copy "$tmp/speech" google/cloud/speech/v1/cloud_speech.proto google/cloud/speech/v1/resource.proto
copy "$tmp/gax" google/api/annotations.proto google/api/http.proto google/api/client.proto \
    google/api/launch_stage.proto google/api/field_behavior.proto google/api/resource.proto \
    google/longrunning/operations.proto google/rpc/status.proto
"$PY" -m pip download --quiet --no-deps "$RIVA_PYPI" -d "$tmp/wheel"
"$PY" -m pip install --quiet --no-deps --target "$tmp/riva" "$tmp"/wheel/*.whl
mkdir -p "$out/riva"
PYTHONPATH="$tmp/riva" "$PY" - "$out/riva/riva_asr.binpb" <<'PY'
import sys
from google.protobuf import descriptor_pb2
from riva.client.proto import riva_asr_pb2

seen, files = set(), []
def add(d):
    for dep in d.dependencies:
        add(dep)
    if d.name not in seen:
        seen.add(d.name)
        fd = descriptor_pb2.FileDescriptorProto()
        d.CopyToProto(fd)
        files.append(fd)
add(riva_asr_pb2.DESCRIPTOR)
fds = descriptor_pb2.FileDescriptorSet(file=files)
open(sys.argv[1], "wb").write(fds.SerializeToString(deterministic=True))
print("riva:", [f.name for f in files])
PY
cat > "$out/SOURCES" <<SRC
google/cloud/speech/v1/*.proto  npm $SPEECH_NPM (build/protos), unchanged
google/{api,longrunning,rpc}/*  npm $GAX_NPM (build/protos), unchanged
riva/riva_asr.binpb             PyPI $RIVA_PYPI: the FileDescriptorSet of riva/proto/riva_{asr,audio,common}.proto
                                as its riva/client/proto/*_pb2.py modules register them
Regenerate with scripts/vendor-protos.sh.
SRC
echo "proto/vendor regenerated"
