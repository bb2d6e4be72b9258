#!/usr/bin/env python3
"""Independent callscribe gRPC client, for wire tests (driven by tests/it/grpc_python.rs).

Built only from proto/callscribe/v1/transcription.proto (and knowledge.proto, which it imports)
with grpcio + grpcio-tools: the stubs are generated at run time into a temporary directory, so
nothing generated is committed.

    client.py --server HOST:PORT --wav FILE [--encoding linear16|mulaw|alaw] [--chunk-ms 100]
              [--realtime] [--interim] [--call-id ID] [--language en] [--model tiny.en]
    client.py --server HOST:PORT --list-models
    client.py --server HOST:PORT --health

Secure servers: `--tls-ca CA.pem` speaks TLS trusting that CA, `--tls-cert/--tls-key` add a
client certificate (mutual TLS), `--api-key KEY` sends `authorization: Bearer KEY` on the
Transcription RPCs (`--api-key-header x-api-key` sends it as `x-api-key` instead).

Output: one JSON object per line on stdout (each StreamingTranscribeResponse, or the
ListModelsResponse); `--health` prints the status name (e.g. SERVING). An RPC error prints
`{"error": {"code": "<StatusCode name>", "details": "..."}}` and exits 2; bad local input
(unreadable WAV, wrong sample width) exits 1.

Needs: grpcio, grpcio-tools, grpcio-health-checking. G.711 encoding is our own (ITU-T G.711,
the same tables as Sun's g711.c); `audioop` is not used (it is gone from Python 3.13).
"""

import argparse
import array
import importlib
import json
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.dont_write_bytecode = True

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
PROTO_FILE = "callscribe/v1/transcription.proto"
# Imported by transcription.proto (suggestions carry knowledge-base hits).
PROTO_DEPS = ["callscribe/v1/knowledge.proto"]


# ---------------------------------------------------------------------------------------------
# G.711 encoders (16-bit linear → 8-bit code).


def linear_to_ulaw(sample):
    """ITU-T G.711 μ-law compression of one 16-bit sample."""
    bias, clip = 0x84, 32635
    sign = 0
    if sample < 0:
        sample = -sample
        sign = 0x80
    sample = min(sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def linear_to_alaw(sample):
    """ITU-T G.711 A-law compression of one 16-bit sample."""
    if sample >= 0:
        sign, mag = 0x80, sample
    else:
        sign, mag = 0x00, -sample - 1
    mag = min(mag, 32767)
    if mag >= 256:
        exponent = 7
        mask = 0x4000
        while not mag & mask:
            exponent -= 1
            mask >>= 1
        mantissa = (mag >> (exponent + 3)) & 0x0F
    else:
        exponent, mantissa = 0, mag >> 4
    return (sign | (exponent << 4) | mantissa) ^ 0x55


def _table(encoder):
    # Indexed by the sample's 16-bit two's-complement pattern.
    return bytes(encoder(i if i < 0x8000 else i - 0x10000) for i in range(0x10000))


def encode_pcm16(pcm, encoding):
    """Little-endian 16-bit PCM bytes → bytes in `encoding` ("linear16", "mulaw", "alaw")."""
    if encoding == "linear16":
        return bytes(pcm)
    samples = array.array("H")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    table = _table(linear_to_ulaw if encoding == "mulaw" else linear_to_alaw)
    return bytes(table[s] for s in samples)


# ---------------------------------------------------------------------------------------------
# Stubs generated from the proto at run time.


def load_stubs(tmp):
    from grpc_tools import protoc

    try:
        from importlib.resources import files

        wkt = str(files("grpc_tools") / "_proto")
    except Exception:  # pragma: no cover - very old Pythons
        wkt = str(Path(protoc.__file__).parent / "_proto")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{wkt}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PROTO_ROOT / PROTO_FILE),
            *(str(PROTO_ROOT / d) for d in PROTO_DEPS),
        ]
    )
    if rc != 0:
        sys.exit(f"protoc failed on {PROTO_ROOT / PROTO_FILE} (status {rc})")
    sys.path.insert(0, tmp)
    pb2 = importlib.import_module("callscribe.v1.transcription_pb2")
    pb2_grpc = importlib.import_module("callscribe.v1.transcription_pb2_grpc")
    return pb2, pb2_grpc


def to_dict(message):
    from google.protobuf.json_format import MessageToDict

    # Print zero values too (channel 0, start_ms 0) where this protobuf version can.
    for flag in ("always_print_fields_with_no_presence", "including_default_value_fields"):
        try:
            return MessageToDict(message, preserving_proto_field_name=True, **{flag: True})
        except TypeError:
            continue
    return MessageToDict(message, preserving_proto_field_name=True)


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def rpc_error(err):
    code = err.code() if callable(getattr(err, "code", None)) else None
    details = err.details() if callable(getattr(err, "details", None)) else str(err)
    emit(
        {
            "error": {
                "code": code.name if code is not None else "UNKNOWN",
                "details": details or "",
            }
        }
    )
    return 2


# ---------------------------------------------------------------------------------------------
# Commands.


def read_wav(path):
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as e:
        sys.exit(f"{path}: {e}")
    if width != 2:
        sys.exit(f"{path}: {8 * width}-bit samples; only 16-bit PCM WAVs are supported")
    if channels not in (1, 2):
        sys.exit(f"{path}: {channels} channels; only mono or stereo are supported")
    return channels, rate, frames


def stream(args, pb2, stub):
    channels, rate, pcm = read_wav(args.wav)
    audio = encode_pcm16(pcm, args.encoding)
    bytes_per_sample = 2 if args.encoding == "linear16" else 1
    frames_per_chunk = max(1, rate * args.chunk_ms // 1000)
    chunk_bytes = frames_per_chunk * channels * bytes_per_sample

    encoding = {"linear16": pb2.LINEAR16, "mulaw": pb2.MULAW, "alaw": pb2.ALAW}[args.encoding]
    config = pb2.StreamingConfig(
        call_id=args.call_id,
        encoding=encoding,
        sample_rate_hz=args.sample_rate if args.sample_rate is not None else rate,
        channel_count=channels,
        language=args.language,
        interim_results=args.interim,
        model=args.model,
        endpoint_silence_ms=args.endpoint_silence_ms,
    )
    if channels == 2:
        config.channel_roles.extend([pb2.AGENT, pb2.CUSTOMER])

    def requests():
        yield pb2.StreamingTranscribeRequest(config=config)
        for offset in range(0, len(audio), chunk_bytes):
            if args.realtime and offset:
                time.sleep(args.chunk_ms / 1000.0)
            yield pb2.StreamingTranscribeRequest(audio=audio[offset : offset + chunk_bytes])
        # Returning half-closes the request stream.

    for response in stub.StreamingTranscribe(
        requests(), timeout=args.timeout, metadata=call_metadata(args)
    ):
        emit(to_dict(response))
    return 0


def call_metadata(args):
    """The API key as gRPC metadata, if one was given."""
    if not args.api_key:
        return None
    if args.api_key_header == "x-api-key":
        return [("x-api-key", args.api_key)]
    return [("authorization", f"Bearer {args.api_key}")]


def open_channel(args):
    """A plaintext channel, or TLS (with a client certificate for mutual TLS)."""
    import grpc

    if not args.tls_ca:
        return grpc.insecure_channel(args.server)
    read = lambda p: Path(p).read_bytes() if p else None  # noqa: E731
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.tls_ca),
        private_key=read(args.tls_key),
        certificate_chain=read(args.tls_cert),
    )
    options = []
    if args.tls_name:
        options.append(("grpc.ssl_target_name_override", args.tls_name))
    return grpc.secure_channel(args.server, credentials, options=options)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="HOST:PORT")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--wav", type=Path, help="16-bit PCM WAV, mono or stereo, to stream")
    mode.add_argument("--list-models", action="store_true", help="call ListModels")
    mode.add_argument("--health", action="store_true", help="call grpc.health.v1.Health/Check")
    p.add_argument("--encoding", choices=["linear16", "mulaw", "alaw"], default="linear16")
    p.add_argument("--chunk-ms", type=int, default=100, help="audio per request (default 100)")
    p.add_argument("--realtime", action="store_true", help="sleep --chunk-ms between chunks")
    p.add_argument("--interim", action="store_true", help="ask for interim results")
    p.add_argument("--call-id", default="py-client")
    p.add_argument("--language", default="")
    p.add_argument("--model", default="")
    p.add_argument("--endpoint-silence-ms", type=int, default=0)
    p.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        help="declare this rate in the config instead of the WAV's (for error-path tests)",
    )
    p.add_argument("--service", default="", help="service name for --health (default: server)")
    p.add_argument("--timeout", type=float, default=600.0, help="RPC deadline in seconds")
    p.add_argument("--tls-ca", help="PEM CA bundle: speak TLS and trust these CAs")
    p.add_argument("--tls-cert", help="PEM client certificate (mutual TLS)")
    p.add_argument("--tls-key", help="PEM key of --tls-cert")
    p.add_argument("--tls-name", help="server name to verify instead of the --server host")
    p.add_argument("--api-key", help="API key for the Transcription RPCs")
    p.add_argument("--api-key-header", choices=["authorization", "x-api-key"], default="authorization")
    args = p.parse_args()
    if args.chunk_ms <= 0:
        p.error("--chunk-ms must be positive")

    import grpc

    with tempfile.TemporaryDirectory(prefix="callscribe-stubs-") as tmp:
        pb2, pb2_grpc = load_stubs(tmp)
        with open_channel(args) as channel:
            try:
                if args.health:
                    from grpc_health.v1 import health_pb2, health_pb2_grpc

                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
                    )
                    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
                    return 0
                stub = pb2_grpc.TranscriptionStub(channel)
                if args.list_models:
                    reply = stub.ListModels(
                        pb2.ListModelsRequest(), timeout=args.timeout, metadata=call_metadata(args)
                    )
                    emit(to_dict(reply))
                    return 0
                return stream(args, pb2, stub)
            except grpc.RpcError as e:
                return rpc_error(e)


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            code = 1
        else:
            code = e.code or 0
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit without the interpreter's shutdown: grpc's channel teardown can deadlock there
    # (a client hung for minutes after printing its result, under load in a CI run).
    os._exit(code)
