#!/usr/bin/env bash
# The distributed batch on 1 worker and on 2, same files, same run (BENCHMARKS.md,
# "Distributed batch"). Each run gets a fresh nats-server (JetStream in a temporary folder,
# a free loopback port), submits the files, starts the workers (one whisper state, one thread
# each) and times from the workers' start to `jobs status` counting every job done.
#
#   scripts/bench-distributed.sh [CALLSCRIBE_BINARY] [MODEL] FILES...
set -euo pipefail
bin=${1:-target/debug/callscribe}
model=${2:-tiny.en}
shift 2 || true
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(audio-fixtures/calls/en_call_8k.wav audio-fixtures/calls/en_call_16k.wav
         audio-fixtures/calls/en_terms_8k.wav audio-fixtures/calls/en_call_8k_mono.wav)
fi

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

run() {
  local workers=$1 dir port url pids=() start end done
  dir=$(mktemp -d /tmp/callscribe-bench-jobs.XXXXXX)
  port=$(free_port)
  url="nats://127.0.0.1:$port"
  nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
  local nats=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
  "$bin" submit "${files[@]}" --nats "$url" --model "$model" >/dev/null
  start=$(date +%s.%N)
  for i in $(seq 1 "$workers"); do
    "$bin" worker --nats "$url" --model "$model" --workers 1 --threads 1 --name "w$i" \
      >"$dir/w$i.log" 2>&1 &
    pids+=($!)
  done
  while :; do
    done=$("$bin" jobs status --nats "$url" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["done"])')
    [ "$done" -ge "${#files[@]}" ] && break
    sleep 0.5
  done
  end=$(date +%s.%N)
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  kill "$nats"; wait "$nats" 2>/dev/null || true
  rm -rf "$dir"
  python3 -c "print(f'{$workers} worker(s): {len(\"${files[*]}\".split())} files in {$end - $start:.1f} s (model load included)')"
}

run 1
run 2
