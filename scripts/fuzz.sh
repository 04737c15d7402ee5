#!/usr/bin/env bash
# Builds a fuzz target with libFuzzer and AddressSanitizer and runs it.
#   scripts/fuzz.sh [TARGET] [RUNS] [extra libFuzzer flags...]
# TARGET: PacketFuzzer (default: authentication, freshness check, wire decoder, protocol core),
# ServiceFuzzer (service payload decoders and the services), JSONFuzzer (the control protocol's
# JSON parser). RUNS defaults to 1,000,000.
# Crash reproducers land in .fuzz/TARGET/artifacts; replay one with a plain build:
#   swift run TARGET .fuzz/TARGET/artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
target=PacketFuzzer
case "${1:-}" in
  PacketFuzzer|ServiceFuzzer|JSONFuzzer) target="$1"; shift ;;
  ''|[0-9]*) ;;
  *) echo "fuzz.sh: unknown target '$1' (PacketFuzzer, ServiceFuzzer or JSONFuzzer)" >&2; exit 2 ;;
esac
runs="${1:-1000000}"; shift || true
swift build -c release --product "$target" --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -parse-as-library
mkdir -p ".fuzz/$target/corpus" ".fuzz/$target/artifacts"
# Seed the corpus with well-formed inputs (written by a plain build of the same target).
swift build --product "$target"
"$(swift build --show-bin-path)/$target" --write-seeds ".fuzz/$target/corpus"
exec ".build-fuzz/release/$target" -runs="$runs" -max_len=4096 -artifact_prefix=".fuzz/$target/artifacts/" "$@" ".fuzz/$target/corpus"
