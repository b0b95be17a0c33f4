#!/usr/bin/env bash
# Coverage-guided fuzzing of one target under libFuzzer (docs/security.md, "Fuzzing").
#
#   fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAG...]   build, instrument, fuzz TARGET for SECONDS
#   fuzz/run.sh --no-build TARGET SECONDS [...]      the same on the last build (test.sh: one build, four runs)
#   fuzz/run.sh --build                              build and instrument only
#   fuzz/run.sh --seed                               regenerate the checked-in seed corpora (fuzz/corpus/*)
#   fuzz/run.sh --replay TARGET FILE...              run saved inputs once each (a crash prints its exception)
#
# TARGET: frames | batch | validator | query. Needs clang and libclang-rt-14-dev (libFuzzer), the
# .NET SDK and the SharpFuzz.CommandLine tool (.config/dotnet-tools.json, restored here).
# The run starts from fuzz/corpus/TARGET (read only) plus .cache/fuzz/corpus/TARGET (what earlier
# runs found, kept between runs). A crash or hang leaves its input in
# .cache/test-results/fuzz/TARGET/ (crash-*, timeout-*, oom-*) and makes the exit status non-zero;
# the last line is "== fuzz: TARGET: done in N s: E executions (R/s) ..." or "== fuzz: TARGET: FAILED ...".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
CACHE="$REPO/.cache/fuzz"
BUILD="$CACHE/build"
DRIVER="$CACHE/libfuzzer-dotnet"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

build() {
    mkdir -p "$CACHE"
    # The driver: libFuzzer's main and engine linked in by clang.
    if [[ ! -x "$DRIVER" || fuzz/driver/libfuzzer-dotnet.c -nt "$DRIVER" ]]; then
        command -v clang >/dev/null || { echo "fuzz/run.sh: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
        clang -O1 -g -fsanitize=fuzzer fuzz/driver/libfuzzer-dotnet.c -o "$DRIVER" ||
            { echo "fuzz/run.sh: could not build the libFuzzer driver (is libclang-rt-14-dev installed?)" >&2; exit 1; }
    fi
    # A fresh output directory: SharpFuzz instruments the assemblies in place, and an incremental
    # build would keep an instrumented copy (which cannot be instrumented twice).
    rm -rf "$BUILD"
    dotnet build fuzz/Analytics.Fuzz.csproj -c Release -nologo -v quiet -clp:ErrorsOnly -o "$BUILD" >&2
    dotnet tool restore >/dev/null
    # Only the code under test is instrumented: its coverage is what guides libFuzzer.
    for assembly in FastIngest QueryService; do
        dotnet tool run sharpfuzz "$BUILD/$assembly.dll" >&2
    done
}

case "${1:-}" in
    --build) build; exit 0 ;;
    --seed)
        [[ -f "$BUILD/Analytics.Fuzz.dll" ]] || build
        for target in frames batch validator query; do
            rm -rf "fuzz/corpus/$target"
            dotnet "$BUILD/Analytics.Fuzz.dll" "$target" --seed "fuzz/corpus/$target"
        done
        exit 0 ;;
    --replay)
        [[ -f "$BUILD/Analytics.Fuzz.dll" && -x "$DRIVER" ]] || build
        target="${2:?usage: fuzz/run.sh --replay TARGET FILE...}"
        shift 2
        exec "$DRIVER" --target_path="$(command -v dotnet)" --target_arg="$BUILD/Analytics.Fuzz.dll" --target_arg="$target" "$@" ;;
    --no-build) shift ;;
    *) build ;;
esac

TARGET="${1:?usage: fuzz/run.sh [--no-build] TARGET SECONDS [LIBFUZZER_FLAG...]}"
SECONDS_BUDGET="${2:?usage: fuzz/run.sh [--no-build] TARGET SECONDS [LIBFUZZER_FLAG...]}"
shift 2
[[ -d "fuzz/corpus/$TARGET" ]] || { echo "fuzz/run.sh: no target '$TARGET' (fuzz/corpus/$TARGET is missing)" >&2; exit 2; }
WORK="$CACHE/corpus/$TARGET"
ARTIFACTS="$REPO/.cache/test-results/fuzz/$TARGET"
# What an earlier run saved there is not this run's finding (keep it elsewhere to keep it).
rm -rf "$ARTIFACTS"
mkdir -p "$WORK" "$ARTIFACTS"
LOG="$ARTIFACTS.log"

# -timeout: an input running 10 s is a hang (saved as timeout-*); -max_len: a WebSocket seed
# frame is 70 kB; -rss_limit_mb=0: the limit would measure the driver, not the .NET child.
status=0
"$DRIVER" -max_total_time="$SECONDS_BUDGET" -timeout=10 -max_len=131072 -rss_limit_mb=0 -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/" "$@" \
    --target_path="$(command -v dotnet)" --target_arg="$BUILD/Analytics.Fuzz.dll" --target_arg="$TARGET" \
    "$WORK" "fuzz/corpus/$TARGET" > "$LOG" 2>&1 || status=$?

executions="$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$LOG" | tail -n1)"
rate="$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$LOG" | tail -n1)"
coverage="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$LOG" | tail -n1 || true)"
found="$(find "$ARTIFACTS" -type f | head -n5 | tr '\n' ' ')"
if [[ $status -ne 0 || -n "$found" ]]; then
    grep -E 'Exception|ERROR|libfuzzer-dotnet:' "$LOG" | head -n 20 >&2 || true
    echo "== fuzz: $TARGET: FAILED (exit $status) after ${executions:-?} executions; input(s): ${found:-none saved}; log: $LOG"
    exit 1
fi
echo "== fuzz: $TARGET: done in $SECONDS_BUDGET s: ${executions:-0} executions (${rate:-0}/s), $coverage, corpus $(ls "$WORK" | wc -l) + $(ls "fuzz/corpus/$TARGET" | wc -l) seeds"
