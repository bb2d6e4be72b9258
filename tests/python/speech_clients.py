#!/usr/bin/env python3
"""Drives `callscribe serve`'s drop-in speech services with the vendors' own client libraries,
for the wire tests in tests/it/speech_apis.rs.

    speech_clients.py --server HOST:PORT google-stream --wav F [--encoding linear16|mulaw] ...
    speech_clients.py --server HOST:PORT google-recognize --wav F [--long-running] ...
    speech_clients.py --server HOST:PORT riva-stream --wav F [--encoding linear_pcm|mulaw|alaw] ...
    speech_clients.py --server HOST:PORT riva-recognize --wav F ...
    speech_clients.py --server HOST:PORT reflection

google-*: google-cloud-speech's `SpeechClient` over a `SpeechGrpcTransport` on a plain grpc
channel to the server (LongRunningRecognize polls GetOperation through the client's own
operations client). riva-*: nvidia-riva-client's `riva.client.ASRService` on
`riva.client.Auth(uri=...)`. reflection: grpcio-reflection's client (reflection v1alpha).

Output: one JSON object per line on stdout: each response (results flattened: transcript,
is_final, stability, channel_tag, end_ms, language_code, words) or the reflection listing.
An RPC error prints {"error": {"code": NAME, "details": "..."}} and exits 2.
Needs: google-cloud-speech, nvidia-riva-client, grpcio-reflection.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import grpc

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent

# The WAV reader and G.711 encoders of the native wire tests' client.
_spec = importlib.util.spec_from_file_location("native_client", HERE / "client.py")
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)


def emit(obj):
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def finish(code):
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's shutdown: grpc's channel teardown can hang there.
    os._exit(code)


def metadata(args):
    md = []
    if args.api_key:
        md.append(("authorization", f"Bearer {args.api_key}"))
    if args.call_id:
        md.append(("callscribe-call-id", args.call_id))
    return md


def chunks(data, frame_bytes, rate, chunk_ms, realtime=False):
    step = max(1, rate * chunk_ms // 1000) * frame_bytes
    for i in range(0, len(data), step):
        yield data[i : i + step]
        if realtime:
            time.sleep(chunk_ms / 1000)


def ms(td):
    """A proto-plus Duration (datetime.timedelta) or a protobuf Duration, in milliseconds."""
    if td is None:
        return 0
    if hasattr(td, "total_seconds"):
        return round(td.total_seconds() * 1000)
    return td.seconds * 1000 + td.nanos // 1_000_000


# ---------------------------------------------------------------------------------------------
# Google Cloud Speech-to-Text v1


def google_client(args):
    from google.cloud import speech_v1 as speech
    from google.cloud.speech_v1.services.speech.transports import SpeechGrpcTransport

    channel = grpc.insecure_channel(args.server)
    return speech, speech.SpeechClient(transport=SpeechGrpcTransport(channel=channel))


def google_config(speech, args, channels, rate):
    enc = {
        "linear16": speech.RecognitionConfig.AudioEncoding.LINEAR16,
        "mulaw": speech.RecognitionConfig.AudioEncoding.MULAW,
        "amr": speech.RecognitionConfig.AudioEncoding.AMR,
        "flac": speech.RecognitionConfig.AudioEncoding.FLAC,
        "unspecified": speech.RecognitionConfig.AudioEncoding.ENCODING_UNSPECIFIED,
    }[args.encoding]
    contexts = []
    if args.phrases:
        contexts.append(speech.SpeechContext(phrases=args.phrases.split(","), boost=args.boost))
    return speech.RecognitionConfig(
        encoding=enc,
        sample_rate_hertz=rate,
        audio_channel_count=channels,
        enable_separate_recognition_per_channel=args.separate,
        language_code=args.language,
        speech_contexts=contexts,
        enable_word_time_offsets=args.words,
        model=args.model,
    )


def google_result(r, is_final=True, stability=0.0):
    alt = r.alternatives[0] if r.alternatives else None
    return {
        "transcript": alt.transcript if alt else "",
        "confidence": alt.confidence if alt else 0.0,
        "is_final": is_final,
        "stability": stability,
        "channel_tag": r.channel_tag,
        "end_ms": ms(r.result_end_time),
        "language_code": r.language_code,
        "words": [
            {"word": w.word, "start_ms": ms(w.start_time), "end_ms": ms(w.end_time)}
            for w in (alt.words if alt else [])
        ],
    }


def google_error(e):
    code = getattr(e, "grpc_status_code", None)
    emit({"error": {"code": code.name if code else type(e).__name__, "details": e.message}})
    finish(2)


def google_stream(args):
    from google.api_core import exceptions

    speech, client = google_client(args)
    channels, rate, pcm = native.read_wav(args.wav)
    audio = native.encode_pcm16(pcm, "mulaw" if args.encoding == "mulaw" else "linear16")
    frame = channels * (1 if args.encoding == "mulaw" else 2)
    config = speech.StreamingRecognitionConfig(
        config=google_config(speech, args, channels, rate),
        interim_results=args.interim,
        single_utterance=args.single_utterance,
        enable_voice_activity_events=args.voice_events,
    )
    from google.cloud.speech_v1.services.speech import SpeechClient as GapicSpeechClient

    def requests():
        yield speech.StreamingRecognizeRequest(streaming_config=config)
        for c in chunks(audio, frame, rate, args.chunk_ms, args.realtime):
            yield speech.StreamingRecognizeRequest(audio_content=c)

    # The library's helper (SpeechClient.streaming_recognize(config, requests)) drops its
    # `metadata` argument; the generated method under it sends it.
    try:
        for resp in GapicSpeechClient.streaming_recognize(
            client, requests=requests(), metadata=metadata(args), timeout=args.timeout
        ):
            event = speech.StreamingRecognizeResponse.SpeechEventType(resp.speech_event_type).name
            if resp.speech_event_type:
                emit({"speech_event": event, "at_ms": ms(resp.speech_event_time)})
            for r in resp.results:
                emit(google_result(r, r.is_final, r.stability))
    except exceptions.GoogleAPICallError as e:
        google_error(e)


def google_recognize(args):
    from google.api_core import exceptions

    speech, client = google_client(args)
    channels, rate, pcm = native.read_wav(args.wav)
    if args.content_file:
        content = Path(args.content_file).read_bytes()
    elif args.whole_file:
        content = Path(args.wav).read_bytes()
    else:
        content = pcm
    config = google_config(speech, args, channels, rate)
    audio = speech.RecognitionAudio(content=content)
    try:
        if args.long_running:
            op = client.long_running_recognize(
                config=config, audio=audio, metadata=metadata(args)
            )
            emit({"operation": op.operation.name, "done": op.operation.done})
            response = op.result(timeout=args.timeout)
        else:
            response = client.recognize(
                config=config, audio=audio, metadata=metadata(args), timeout=args.timeout
            )
    except exceptions.GoogleAPICallError as e:
        google_error(e)
    for r in response.results:
        emit(google_result(r))


# ---------------------------------------------------------------------------------------------
# NVIDIA Riva


def riva_service(args):
    import riva.client

    md = [[k, v] for k, v in metadata(args)]
    auth = riva.client.Auth(uri=args.server, metadata_args=md or None)
    return riva.client, riva.client.ASRService(auth)


def riva_config(rc, args, channels, rate):
    enc = {
        "linear_pcm": rc.AudioEncoding.LINEAR_PCM,
        "linear16": rc.AudioEncoding.LINEAR_PCM,
        "mulaw": rc.AudioEncoding.MULAW,
        "alaw": rc.AudioEncoding.ALAW,
        "oggopus": rc.AudioEncoding.OGGOPUS,
    }[args.encoding]
    config = rc.RecognitionConfig(
        encoding=enc,
        sample_rate_hertz=rate,
        audio_channel_count=channels,
        enable_separate_recognition_per_channel=args.separate,
        language_code=args.language,
        enable_word_time_offsets=args.words,
        max_alternatives=1,
        model=args.model,
    )
    if args.phrases:
        rc.add_word_boosting_to_config(config, args.phrases.split(","), args.boost)
    return config


def riva_result(r):
    alt = r.alternatives[0] if r.alternatives else None
    return {
        "transcript": alt.transcript if alt else "",
        "confidence": alt.confidence if alt else 0.0,
        "is_final": getattr(r, "is_final", True),
        "stability": getattr(r, "stability", 0.0),
        "channel_tag": r.channel_tag,
        "end_ms": round(r.audio_processed * 1000),
        "language_code": list(alt.language_code) if alt else [],
        "words": [
            {"word": w.word, "start_ms": w.start_time, "end_ms": w.end_time}
            for w in (alt.words if alt else [])
        ],
    }


def riva_error(e):
    emit({"error": {"code": e.code().name, "details": e.details()}})
    finish(2)


def riva_stream(args):
    rc, asr = riva_service(args)
    channels, rate, pcm = native.read_wav(args.wav)
    codec = {"linear_pcm": "linear16", "oggopus": "linear16"}.get(args.encoding, args.encoding)
    audio = native.encode_pcm16(pcm, codec if codec in ("linear16", "mulaw", "alaw") else "linear16")
    frame = channels * (2 if codec == "linear16" else 1)
    config = rc.StreamingRecognitionConfig(
        config=riva_config(rc, args, channels, rate), interim_results=args.interim
    )
    try:
        for resp in asr.streaming_response_generator(
            audio_chunks=chunks(audio, frame, rate, args.chunk_ms, args.realtime),
            streaming_config=config,
        ):
            for r in resp.results:
                out = riva_result(r)
                out["id"] = resp.id.value
                emit(out)
    except grpc.RpcError as e:
        riva_error(e)


def riva_recognize(args):
    rc, asr = riva_service(args)
    channels, rate, _ = native.read_wav(args.wav)
    config = riva_config(rc, args, channels, rate)
    try:
        response = asr.offline_recognize(Path(args.wav).read_bytes(), config)
    except grpc.RpcError as e:
        riva_error(e)
    for r in response.results:
        emit(riva_result(r))


def riva_config_listing(args):
    rc, asr = riva_service(args)
    from riva.client.proto import riva_asr_pb2

    try:
        response = asr.stub.GetRivaSpeechRecognitionConfig(
            riva_asr_pb2.RivaSpeechRecognitionConfigRequest(), metadata=asr.auth.get_auth_metadata()
        )
    except grpc.RpcError as e:
        riva_error(e)
    for c in response.model_config:
        emit({"model_name": c.model_name, "parameters": dict(c.parameters)})


# ---------------------------------------------------------------------------------------------
# Reflection (v1alpha: the only version grpcio-reflection's client speaks)


def reflection(args):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    channel = grpc.insecure_channel(args.server)
    try:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        pool = DescriptorPool(db)
        methods = {
            s: sorted(m.name for m in pool.FindServiceByName(s).methods)
            for s in services
            if not s.startswith("grpc.")
        }
    except grpc.RpcError as e:
        riva_error(e)
    emit({"services": services, "methods": methods})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True, help="HOST:PORT")
    p.add_argument(
        "mode",
        choices=["google-stream", "google-recognize", "riva-stream", "riva-recognize", "riva-config", "reflection"],
    )
    p.add_argument("--wav", type=Path)
    p.add_argument("--encoding", default="linear16")
    p.add_argument("--language", default="en-US")
    p.add_argument("--model", default="")
    p.add_argument("--separate", action="store_true", help="enable_separate_recognition_per_channel")
    p.add_argument("--interim", action="store_true")
    p.add_argument("--words", action="store_true", help="enable_word_time_offsets")
    p.add_argument("--single-utterance", action="store_true")
    p.add_argument("--voice-events", action="store_true")
    p.add_argument("--phrases", default="", help="comma-separated speech_contexts phrases")
    p.add_argument("--boost", type=float, default=10.0)
    p.add_argument("--whole-file", action="store_true", help="send the WAV file, header and all")
    p.add_argument("--content-file", type=Path, help="send this file's bytes (e.g. a FLAC of --wav)")
    p.add_argument("--long-running", action="store_true", help="LongRunningRecognize + GetOperation")
    p.add_argument("--chunk-ms", type=int, default=100)
    p.add_argument("--realtime", action="store_true", help="sleep --chunk-ms between chunks")
    p.add_argument("--call-id", default="")
    p.add_argument("--api-key", default="")
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args()
    {
        "google-stream": google_stream,
        "google-recognize": google_recognize,
        "riva-stream": riva_stream,
        "riva-recognize": riva_recognize,
        "riva-config": riva_config_listing,
        "reflection": reflection,
    }[args.mode](args)
    finish(0)


if __name__ == "__main__":
    main()
