#!/usr/bin/env bash
# One command for every performance claim (issue #7). Builds Release, then runs:
#   1. LoadTool, WebSocket → local log, ingest role alone, 64 connections × 50-event batches, as
#      fast as possible, with the echo baseline in the same run, then 10,000 idle WebSockets
#   2. LoadTool, the same WebSocket load into Kafka (--sink kafka: a 3-broker librdkafka mock
#      cluster in the load tool's process, server --log kafka); RESULTS.md compares it with 1
#   3. LoadTool, the same batches POSTed to /v1/events (HTTP variant)
#   4. LoadTool paced at half of the peak measured in 1 (ack latency target)
#   5. LoadTool, all roles in one process (the embedded default) as fast as possible, then Rollup
#      catch-up and reprocessing of everything ingested; again with processing logic 2, the
#      baseline for what enrichment from maintained data (logic 3) costs
#   6. LoadTool, all roles, sustained: paced load stepped up (25,000, 50,000, 75,000, 100,000,
#      150,000, 200,000, 300,000, 400,000, 500,000 events/s, 60 s each after 20 s at the step's rate)
#      with the freshness probe, until a step misses p99 ≤ 5 s over ≥ 60 samples (issue #17)
#  6b. LoadTool, all roles, one event per HTTP POST over 64 keep-alive connections, against Debian's
#      nginx answering `return 204` to the same requests (installed here when missing, else skipped)
#   7. StoreInsert: embedded chDB vs the ClickHouse.Driver path
#   8. every BenchmarkDotNet micro-benchmark (job "short": 3 warm-ups, 3 iterations)
#   9. QueryBench: the dashboard's questions on a generated history (20M events, 100,000 merchants,
#      13 months) from the pre-aggregates vs a scan of enriched events, idle and while Rollup
#      catches up; Rollup's catch-up without and with the pre-aggregates
#  10. QueryBench --storage: N events through the real Rollup, OPTIMIZE FINAL, bytes on disk per
#      event of every table (system.parts)
#  11. QueryBench --catch-up-only: Rollup alone catching up a backlog with ingest idle under the host's
#      processing logic, then reprocessing every site-day of it, in one process (issue #17's catch-up
#      and reprocessing targets, same events and logic on both sides)
# Parts 1, 4 and 5 (the headline figures) run 3 times in a full run (once in smoke); RESULTS.md gives
# the median of each figure with its spread (min-max), part 4 paced at half of part 1's median peak.
# Each part writes JSON into the results directory; LoadTool --write-results turns them into
# RESULTS.md: machine, date, this command, the targets beside the measured values, one table per part.
#
#   perf/run-all.sh            full run, an estimated 40-50 minutes on 2 cores (44 on 2026-12-01; the 3 repeats
#                              of parts 1, 4 and 5 about 5 minutes; part 6 about 90-120 s per step, 6-10
#                              minutes as 3-4 steps pass and the next fails); run it on a quiet machine.
#                              Results: perf/results/ (its *.json are replaced; git-ignored) and perf/RESULTS.md
#   perf/run-all.sh --smoke    every part at smoke size (seconds each) to prove it works; results and
#                              RESULTS.md go to a temporary directory, never to perf/RESULTS.md
#   --out DIR                  results directory instead (its *.json are replaced; RESULTS.md goes there too)
#   --no-build                 use the Release builds already there (test.sh has just built them)
#
# Exit status 0 when every part ran and passed its own checks (every batch answered, every event
# acknowledged and, for Kafka, in the topic; rows stored = rows sent; every benchmark ran). Timings
# are never asserted: a missed target is written down in RESULTS.md, not failed. RESULTS.md is
# written either way.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"

smoke=0
build=1
out=""
args=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --no-build) build=0 ;;
        --out) out="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
        -h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run-all.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
COMMAND="perf/run-all.sh${args[*]:+ ${args[*]}}"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# The embedded engine for the server, StoreInsert and the store insert benchmark.
CHDB_LIB_PATH="${CHDB_LIB_PATH:-$(scripts/fetch-chdb.sh | tail -n1)}"
export CHDB_LIB_PATH
# The user-agent benchmarks read uap-core's rules and the bot list from the enrichment data.
ANALYTICS_ENRICHMENT_DATA="${ANALYTICS_ENRICHMENT_DATA:-$(scripts/fetch-enrichment-data.sh | tail -n1)}"
export ANALYTICS_ENRICHMENT_DATA

if [[ -n "$out" ]]; then
    RESULTS_MD="$out/RESULTS.md"
elif [[ $smoke -eq 1 ]]; then
    out="$(mktemp -d "${TMPDIR:-/tmp}/perf-smoke.XXXXXX")"
    RESULTS_MD="$out/RESULTS.md"
else
    out="$REPO/perf/results"
    RESULTS_MD="$REPO/perf/RESULTS.md"
fi
mkdir -p "$out"
# A run owns its directory: results of an earlier run must not mix into this RESULTS.md.
# BenchmarkDotNet writes below BenchmarkDotNet.Artifacts/, a name .gitignore covers anywhere.
rm -rf "$out"/*.json "$out/BenchmarkDotNet.Artifacts"

if [[ $build -eq 1 ]]; then
    for project in src/Host perf/LoadTool perf/StoreInsert perf/Benchmarks perf/QueryBench; do
        echo "== build $project (Release)"
        dotnet build "$project" -c Release -nologo -v quiet -clp:ErrorsOnly
    done
fi

# Part 6b's baseline is Debian's nginx (LoadTool runs it as a child process with a config of its
# own; the package's service is not used). Installed as test.sh installs its packages, as root or
# through password-less sudo; without either, one line says so and only that baseline is skipped.
nginx_baseline=(--baseline nginx)
if [[ ! -x /usr/sbin/nginx ]]; then
    as_root=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as_root=(sudo -n); fi
    if [[ $(id -u) -eq 0 || ${#as_root[@]} -gt 0 ]]; then
        echo "== install nginx (Debian) for the single-event HTTP baseline"
        apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
        "${apt[@]}" install -y nginx >/dev/null 2>&1 || { "${apt[@]}" update >/dev/null 2>&1; "${apt[@]}" install -y nginx >/dev/null 2>&1; } || true
    fi
    if [[ ! -x /usr/sbin/nginx ]]; then
        echo "run-all.sh: /usr/sbin/nginx is missing and could not be installed (apt-get install -y nginx needs root or password-less sudo): single-event HTTP runs without its nginx baseline"
        nginx_baseline=(--baseline none)
    fi
fi

failed=()
part() {
    local name="$1"
    shift
    echo "== perf: $name"
    local started=$SECONDS
    if "$@"; then
        echo "== perf: $name: done in $((SECONDS - started)) s"
    else
        echo "== perf: $name: FAILED (exit $?) after $((SECONDS - started)) s"
        failed+=("$name")
    fi
}

load_tool=(dotnet perf/LoadTool/bin/Release/net10.0/LoadTool.dll --server "$REPO/src/Host/bin/Release/net10.0/analytics.dll")
if [[ $smoke -eq 1 ]]; then
    load=(--smoke)          # 8 connections × 10 events, 2 s per phase after 0.5 s warm-up
    repeats=1
    idle=200
    # 3 s steps, a probe pageview every 25 ms (~100 samples): too short to pass, marked so in RESULTS.md.
    sustained=(--smoke --seconds 3 --freshness-interval 25)
    steps="2000,4000"
    single_event=(--smoke)
    store_insert=(--smoke)  # 20,000 rows in batches of 5,000
    benchmarks=(--job Dry --inProcess)
    query_bench=(--smoke)   # 100,000 events, 300 merchants, 31 days, 3 runs per question, 20,000-event backlog
    rollup_alone=(--smoke)  # a 20,000-event backlog
else
    load=(--connections 64 --batch 50 --seconds 10)
    repeats=3               # the headline parts 1, 4 and 5; RESULTS.md reports the median and the spread
    idle=10000
    # 60 s steps, a probe pageview every 100 ms (~600 samples); stops at the first failing step.
    # Each step runs 20 s at its rate before it is measured: sustained means Rollup's steady state,
    # and a just-started server needs ~10 s of load before its rounds reach it (JIT tiering: its
    # first rounds store ~30,000 events/s, the lag peaks at ~4 s of load; perf/README.md).
    sustained=(--connections 64 --batch 50 --seconds 60 --warmup 20)
    steps="25000,50000,75000,100000,150000,200000,300000,400000,500000"
    single_event=(--connections 64 --seconds 10)
    store_insert=()         # 1,000,000 rows in batches of 50,000
    benchmarks=(--job short)
    query_bench=()          # 20,000,000 events, 100,000 merchants, 395 days, 30 runs per question, 2,000,000-event backlog (for ≥ 20 runs per question under catch-up)
    rollup_alone=()         # a 1,000,000-event backlog: 10 rounds of 100,000
fi

# Parts 1-4: the ingest service alone (--server-roles ingest), as it runs in the scale-out
# deployment; the ingest targets read these. Parts 5-6: the embedded default, all roles in one
# process, where Rollup and the engine share the 2 cores with ingest.
# The headline parts (1, 4, 5) run $repeats times (3 in a full run, 1 in smoke) under one label
# each: RESULTS.md reports their median with the spread. Repeat 1 writes the plain file name.
repeat_suffix() { [[ $1 -eq 1 ]] && echo "" || echo "-r$1"; }
peaks=()
for i in $(seq 1 "$repeats"); do
    # Idle connections once: memory per connection is not a headline figure, and it takes ~15 s.
    if [[ $i -eq 1 ]]; then idle_args=(--idle-connections "$idle"); else idle_args=(); fi
    part "ingest only: WebSocket → local log, echo baseline (run $i of $repeats)" \
        "${load_tool[@]}" "${load[@]}" --server-roles ingest "${idle_args[@]}" \
        --label "WebSocket /v1/ws → local log, ingest role" --json "$out/load-1-websocket$(repeat_suffix "$i").json"
    peaks+=("$out/load-1-websocket$(repeat_suffix "$i").json")
done
# The same load into Kafka; RESULTS.md sets the two side by side.
part "ingest only: WebSocket → Kafka (mock cluster), echo baseline" \
    "${load_tool[@]}" "${load[@]}" --server-roles ingest --sink kafka \
    --label "WebSocket /v1/ws → Kafka (mock cluster, 3 brokers), ingest role" --json "$out/load-2-kafka.json"
part "ingest only: HTTP POST → local log" \
    "${load_tool[@]}" "${load[@]}" --server-roles ingest --transport http \
    --label "HTTP POST /v1/events → local log, ingest role" --json "$out/load-3-http.json"
# Half of the median peak of part 1's runs, the same rate for every repeat.
for i in $(seq 1 "$repeats"); do
    part "ingest only: WebSocket paced at half of the peak (run $i of $repeats)" \
        "${load_tool[@]}" "${load[@]}" --server-roles ingest --rate-from "$(IFS=,; echo "${peaks[*]}")" --rate-fraction 0.5 \
        --label "WebSocket /v1/ws → local log, ingest role, half of peak" --json "$out/load-4-half-peak$(repeat_suffix "$i").json"
done
for i in $(seq 1 "$repeats"); do
    # Catch-up and reprocessing once (about two minutes); the repeats measure the ingest figures.
    if [[ $i -eq 1 ]]; then reprocess_args=(--reprocess); then_what=", then Rollup catch-up and reprocessing"; else reprocess_args=(); then_what=""; fi
    part "all roles: WebSocket → local log as fast as possible$then_what (run $i of $repeats)" \
        "${load_tool[@]}" "${load[@]}" "${reprocess_args[@]}" \
        --label "WebSocket /v1/ws → local log, all roles" --json "$out/load-5-all-roles$(repeat_suffix "$i").json"
done
# The same, with processing logic 2 (hand-written rules, no data sets): the baseline that shows
# what logic 3's enrichment from maintained data costs Rollup (catch-up and reprocessing).
part "all roles: the same with processing logic 2 (enrichment baseline)" \
    "${load_tool[@]}" "${load[@]}" --reprocess --server-args "--logic-version 2" \
    --label "WebSocket /v1/ws → local log, all roles, processing logic 2" --json "$out/load-5b-all-roles-logic-2.json"
# Sustained end-to-end: all roles, paced load stepped up with the freshness probe (one pageview per
# interval) until a step misses freshness p99 ≤ 5 s over ≥ 60 samples and ≥ 60 s; RESULTS.md sets
# the highest passing rate against part 1's median peak.
part "all roles: sustained load, stepped, with freshness (${steps})" \
    "${load_tool[@]}" "${sustained[@]}" --steps "$steps" \
    --label "WebSocket /v1/ws → local log, all roles, sustained steps" --json "$out/load-6-sustained.json"
# One event per request, the way beacons and server-side senders arrive, against nginx's `return 204`
# with the same requests from the same client code (issue #17).
part "all roles: single-event HTTP POST, nginx baseline" \
    "${load_tool[@]}" "${single_event[@]}" --transport http --batch 1 "${nginx_baseline[@]}" \
    --label "HTTP POST /v1/events, one event per request, all roles" --json "$out/load-7-single-event-http.json"
part "store insert: embedded vs ClickHouse.Driver" \
    dotnet perf/StoreInsert/bin/Release/net10.0/StoreInsert.dll "${store_insert[@]}" --json "$out/store-insert.json"
part "micro-benchmarks (BenchmarkDotNet)" \
    dotnet perf/Benchmarks/bin/Release/net10.0/Benchmarks.dll --filter '*' "${benchmarks[@]}" \
    --exporters json --artifacts "$out/BenchmarkDotNet.Artifacts"

part "queries: pre-aggregates vs scan, idle and during Rollup catch-up (QueryBench)" \
    dotnet perf/QueryBench/bin/Release/net10.0/QueryBench.dll "${query_bench[@]}" --json "$out/query-bench.json"

if [[ $smoke -eq 1 ]]; then storage=(--smoke); else storage=(); fi   # 5,000 or 200,000 events
part "storage: bytes on disk per event of every table after merges (QueryBench --storage)" \
    dotnet perf/QueryBench/bin/Release/net10.0/QueryBench.dll --storage "${storage[@]}" --json "$out/storage-cost.json"

part "Rollup alone: catch-up and reprocessing of one backlog, the host's processing logic (QueryBench --catch-up-only)" \
    dotnet perf/QueryBench/bin/Release/net10.0/QueryBench.dll --catch-up-only --logic current "${rollup_alone[@]}" --json "$out/rollup-alone.json"

part "write $RESULTS_MD" \
    "${load_tool[@]:0:2}" --write-results "$RESULTS_MD" --results "$out" --command "$COMMAND"

echo
echo "results: $out"
echo "summary: $RESULTS_MD"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "every part passed its checks"
