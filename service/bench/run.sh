#!/usr/bin/env bash
# Every service figure of docs/benchmarks.md in one go (release builds, this machine).
# Usage: service/bench/run.sh        (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --bin switchyard -p switchyard
cargo build --release -p switchyard-service --example service_load
echo "== $(date -u +%FT%TZ) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/switchyard serve --tcp 127.0.0.1:17700 --http 127.0.0.1:17701 >/tmp/switchyard-bench.log 2>&1 &
serve=$!
trap 'kill -INT $serve 2>/dev/null || true' EXIT
sleep 1
kill -0 $serve 2>/dev/null || { cat /tmp/switchyard-bench.log; exit 1; }
echo "== HTTP tell (wrk, keep-alive); load: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t1 -c64 -d10s --latency -s service/bench/tell.lua http://127.0.0.1:17701/v1/agents/echo/messages
echo "== HTTP ask (wrk, keep-alive); load: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t1 -c64 -d10s --latency -s service/bench/ask.lua http://127.0.0.1:17701/v1/agents/echo/ask
kill -INT $serve
wait $serve || true
trap - EXIT
echo "== drain summary of that server"
tail -12 /tmp/switchyard-bench.log
echo "== TCP, pooled batching client, server in process; load: $(cut -d' ' -f1-3 /proc/loadavg)"
target/release/examples/service_load --phase tells
target/release/examples/service_load --phase asks --concurrency 1 --asks 50000 --rate 5000 --secs 3
target/release/examples/service_load --phase asks --secs 5
echo "== done; load: $(cut -d' ' -f1-3 /proc/loadavg)"
