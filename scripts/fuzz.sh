#!/usr/bin/env bash
# Builds PacketFuzzer with libFuzzer and AddressSanitizer and runs it.
#   scripts/fuzz.sh [RUNS] [extra libFuzzer flags...]     (default 1,000,000 runs)
# Crash reproducers land in .fuzz/artifacts; replay one with a plain build:
#   swift run PacketFuzzer .fuzz/artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"; shift || true
swift build -c release --product PacketFuzzer --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
mkdir -p .fuzz/corpus .fuzz/artifacts
# Seed the corpus with well-formed exchanges (written by a plain build of the same target).
swift build --product PacketFuzzer
"$(swift build --show-bin-path)/PacketFuzzer" --write-seeds .fuzz/corpus
exec .build-fuzz/release/PacketFuzzer -runs="$runs" -max_len=4096 -artifact_prefix=.fuzz/artifacts/ "$@" .fuzz/corpus
