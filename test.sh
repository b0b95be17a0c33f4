#!/usr/bin/env bash
# Runs every test suite of the repository and ends with one line: "N passed, N failed".
#
# Installs what the tests need first (Debian packages: chromium, npm, postgresql, haproxy, prometheus, varnish, nginx, clang; then the
# ClickHouse engine library and the enrichment data sets), builds the solution once in Release, then runs each test
# project, the benchmark smoke runs, a short pass of each fuzz target (fuzz/run.sh), the browser agents' tests and the
# deployment manifests' checks.
# Exit status: 0 only when every suite ran and nothing failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
REPO="$(pwd)"
RESULTS="$REPO/.cache/test-results"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"

# Debian packages the suites need, installed here when missing (one `apt-get update` at most).
# Each entry is "path-or-command:package"; a suite that needs another program adds a line.
TEST_DEPS=(
    # The browser agents' tests (agents/test/browser) and the dashboard sign-in test
    # (tests/Tenancy.Tests) drive Debian's Chromium at this path through Playwright.
    "/usr/bin/chromium:chromium"
    # The agents' build and tests, and scripts/fetch-chdb.sh (the engine ships as an npm package).
    "npm:npm"
    # The control-plane suites start a throwaway PostgreSQL cluster of their own (initdb + pg_ctl,
    # tests/Shared/PostgresServer.cs): the server binaries of any version, not a running service.
    "/usr/lib/postgresql/*/bin/initdb:postgresql"
    # tests/EndToEnd.Tests/HaProxyTopologyTests.cs runs deploy/haproxy/haproxy.cfg in front of two ingest nodes.
    "/usr/sbin/haproxy:haproxy"
    # tests/EndToEnd.Tests/PrometheusScrapeTests starts a real Prometheus (its own config, port
    # and data directory; the package's system service is not used).
    "/usr/bin/prometheus:prometheus"
    # tests/EndToEnd.Tests/EdgeCacheTests runs deploy/varnish/default.vcl in a varnishd of its own
    # (own working directory and port; the package's system service is not used), with xkey.
    "/usr/sbin/varnishd:varnish"
    "/usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so:varnish-modules"
    # perf/run-all.sh's single-event HTTP part compares with nginx answering `return 204` (an nginx
    # of its own, started by perf/LoadTool with a generated config; the package's service is not used).
    "/usr/sbin/nginx:nginx"
    # fuzz/run.sh builds its libFuzzer driver with clang -fsanitize=fuzzer (libFuzzer itself is in
    # the compiler runtime package).
    "clang:clang"
    "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a:libclang-rt-14-dev"
)
install_test_deps() {
    local missing=() dep reinstall=()
    for dep in "${TEST_DEPS[@]}"; do
        # A command on PATH, or a path (a glob: any version) that exists.
        command -v "${dep%%:*}" >/dev/null 2>&1 || compgen -G "${dep%%:*}" >/dev/null || missing+=("${dep#*:}")
    done
    # The browser must also start: a chromium whose libraries were removed (autoremove, a
    # half-finished upgrade) still has /usr/bin/chromium, and every browser suite would fail.
    if [[ -x /usr/bin/chromium ]] && ! /usr/bin/chromium --version >/dev/null 2>&1; then
        missing+=(chromium); reinstall=(--reinstall)
    fi
    [[ ${#missing[@]} -eq 0 ]] && return 0
    # As root directly; as another user through sudo (without a password prompt, so CI never hangs).
    local as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            echo "test.sh: missing Debian packages and no root or password-less sudo to install them: sudo apt-get install -y ${missing[*]}" >&2
            return 1
        fi
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    # On a fresh machine apt may be busy (a start-up job holds the dpkg lock: wait for it rather
    # than fail), and an index that does not refresh (one unreachable mirror) must not stop the
    # install: apt-get install decides, and is tried once more after a second refresh.
    local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update >&2 || echo "test.sh: apt-get update reported errors; installing anyway" >&2
    if ! "${apt[@]}" install -y "${reinstall[@]}" "${missing[@]}" >&2; then
        "${apt[@]}" update >&2
        if ! "${apt[@]}" install -y "${reinstall[@]}" "${missing[@]}" >&2; then
            # apt-get installs all or nothing: one package this Debian lacks (another release names
            # the fuzzer runtime differently, say) must not keep Chromium and the rest out.
            local package
            for package in "${missing[@]}"; do
                "${apt[@]}" install -y "${reinstall[@]}" "$package" >&2 || echo "test.sh: could not install $package" >&2
            done
        fi
    fi
    # Chromium must be there and start now: every browser suite needs it (a package that installed
    # without it is a failure here, not a browser test failing later).
    /usr/bin/chromium --version >/dev/null 2>&1 || { echo "test.sh: /usr/bin/chromium does not start after apt-get install chromium" >&2; return 1; }
    # Any other program still missing fails the suites that need it, each with its own message, not
    # every suite: say which here.
    for dep in "${TEST_DEPS[@]}"; do
        command -v "${dep%%:*}" >/dev/null 2>&1 || compgen -G "${dep%%:*}" >/dev/null || echo "test.sh: ${dep%%:*} still missing after installing ${dep#*:}; the suites that need it will fail" >&2
    done
}
install_test_deps || { echo "could not install the test dependencies"; echo "0 passed, 1 failed"; exit 1; }
export CHDB_LIB_PATH="$(scripts/fetch-chdb.sh | tail -n1)" || { echo "could not fetch the ClickHouse engine"; echo "0 passed, 1 failed"; exit 1; }
# uap-core, crawler-user-agents, GeoLite2 and referer-parser data for the enrichment rules (npm, Debian), into .cache/enrichment.
ENRICHMENT_DATA="$(scripts/fetch-enrichment-data.sh | tail -n1)" || { echo "could not fetch the enrichment data"; echo "0 passed, 1 failed"; exit 1; }
export ANALYTICS_ENRICHMENT_DATA="$ENRICHMENT_DATA"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# How long each step took, printed before the last line (where to cut CI's time; the agents' suite runs beside Dashboard.Tests, so those two overlap).
timings=()
timed() { timings+=("$1 $(( SECONDS - $2 )) s"); }
timed "install and fetch" 0

started=$SECONDS

echo "== build (Release)"
if ! dotnet build Analytics.sln -c Release -nologo -v quiet -clp:ErrorsOnly; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
timed build "$started"

# The browser agent's script-tag build (agents/packages/agent/dist), which the ingest nodes serve
# at /agent.js: EndToEnd's HAProxy topology test loads it in Chromium. The agents' own suite below
# builds it again.
echo "== build the browser agent"
started=$SECONDS
if ! (cd agents && npm ci --no-audit --no-fund --loglevel=error && npm run build) > "$RESULTS/agent-build.log" 2>&1; then
    tail -n 20 "$RESULTS/agent-build.log"
    echo "agent build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
timed "agent build" "$started"

# The dashboard (dashboard/, served at /): the sign-in test (tests/Tenancy.Tests) and the dashboard's
# browser suite load it in Chromium. Its build fails when the JavaScript is over its gzipped budget.
echo "== build the dashboard"
started=$SECONDS
if ! (cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run build) > "$RESULTS/dashboard-build.log" 2>&1; then
    tail -n 20 "$RESULTS/dashboard-build.log"
    echo "dashboard build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
grep '^dashboard:' "$RESULTS/dashboard-build.log"
timed "dashboard build" "$started"

passed=0
failed=0
suites_failed=()

# A hang must fail its suite, not stall CI: a test running for longer than TEST_HANG_TIMEOUT is
# stopped with its test host (VSTest's blame collector names it in the output), and a whole suite
# is killed after SUITE_TIMEOUT. The longest test takes about a minute and the longest suite
# (EndToEnd) about eight.
TEST_HANG_TIMEOUT="${TEST_HANG_TIMEOUT:-5m}"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-25m}"

# Runs a command in the background and waits for it: bash runs a trap only between foreground
# commands, so this lets an interrupt's trap (below) run at once and stop the command.
suite_pid=
waited() {
    "$@" &
    suite_pid=$!
    wait "$suite_pid"
    local status=$?
    suite_pid=
    return $status
}

run_suite() {
    local project="$1" name started=$SECONDS
    name="$(basename "$project" .csproj)"
    echo "== $name"
    waited timeout --kill-after=30s "$SUITE_TIMEOUT" dotnet test "$project" -c Release --no-build --nologo \
        --blame-hang-timeout "$TEST_HANG_TIMEOUT" --blame-hang-dump-type none \
        --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" \
        --results-directory "$RESULTS"
    local status=$?
    local trx="$RESULTS/$name.trx"
    local p=0 f=0
    if [[ -f "$trx" ]]; then
        local counters
        counters="$(grep -o '<Counters [^>]*>' "$trx" | head -n1)"
        p="$(sed -E 's/.* passed="([0-9]+)".*/\1/' <<<"$counters")"
        f="$(sed -E 's/.* failed="([0-9]+)".*/\1/' <<<"$counters")"
        local e
        e="$(sed -E 's/.* error="([0-9]+)".*/\1/' <<<"$counters")"
        f=$((f + e))
    fi
    # A crashed or aborted run may report nothing: count it as a failure, never as a pass.
    if [[ $status -ne 0 && $f -eq 0 ]]; then f=1; fi
    passed=$((passed + p))
    failed=$((failed + f))
    [[ $f -ne 0 ]] && suites_failed+=("$name")
    timed "$name" "$started"
}

# An npm package's tests (`npm ci && npm test` in DIR): node's test runner ends with "# pass N" /
# "# fail N" (TAP), which are added here. start_npm_suite runs one in the background (its output
# goes to its log and is printed by finish_npm_suite); run_npm_suite runs one in the foreground.
declare -A npm_pid npm_started
start_npm_suite() {
    local name="$1" dir="$2"
    npm_started[$name]=$SECONDS
    # A process group of its own, so that an interrupted test.sh can stop it with everything it started.
    setsid bash -c 'cd "$1" && npm ci --no-audit --no-fund --loglevel=error && timeout --kill-after=30s "$2" npm test' \
        _ "$dir" "$SUITE_TIMEOUT" > "$RESULTS/$name.log" 2>&1 &
    npm_pid[$name]=$!
}
# An interrupted run stops what it started: the command waited for (a .NET suite, the perf smoke
# run, the fuzz build: timeout passes the signal on), the background npm suite's process group,
# the fuzzers.
declare -A fuzz_pid=()
stop_children() {
    local pid
    [[ -n "$suite_pid" ]] && kill -TERM "$suite_pid" 2>/dev/null
    for pid in "${npm_pid[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for pid in "${fuzz_pid[@]}"; do kill -TERM "$pid" 2>/dev/null; done
}
trap 'stop_children; exit 130' INT
trap 'stop_children; exit 143' TERM
finish_npm_suite() {
    local name="$1" status p f
    wait "${npm_pid[$name]}"
    status=$?
    unset "npm_pid[$name]"
    echo "== $name (npm test)"
    cat "$RESULTS/$name.log"
    p="$(grep -E '^# pass [0-9]+$' "$RESULTS/$name.log" | tail -n1 | cut -d' ' -f3)"
    f="$(grep -E '^# fail [0-9]+$' "$RESULTS/$name.log" | tail -n1 | cut -d' ' -f3)"
    p=${p:-0}; f=${f:-0}
    if [[ $status -ne 0 && $f -eq 0 ]]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    [[ $f -ne 0 ]] && suites_failed+=("$name")
    timed "$name" "${npm_started[$name]}"
}
run_npm_suite() { start_npm_suite "$1" "$2"; finish_npm_suite "$1"; }

for project in tests/*/*.csproj; do
    # The browser agents' suite (agents/: unit tests and headless-Chromium tests against the Release
    # host built above) runs beside Dashboard.Tests: each keeps about 0.8 of the 2 cores busy (the
    # rest is browsers and servers waiting), so together they took 180 s against 104 + 140 s one
    # after the other. The CPU-bound suites (EndToEnd above all) run alone.
    if [[ "$project" == */Dashboard.Tests.csproj && -f agents/package.json ]]; then
        start_npm_suite agents agents
        run_suite "$project"
        finish_npm_suite agents
        agents_ran=1
    else
        run_suite "$project"
    fi
done
# Without Dashboard.Tests (renamed, removed) the agents' suite runs alone rather than not at all.
[[ -f agents/package.json && -z "${agents_ran:-}" ]] && run_npm_suite agents agents

# Benchmarks are not timed tests: CI runs every part of perf/run-all.sh at smoke size (LoadTool
# over WebSocket into the local log and into Kafka, over HTTP, paced, reprocess, idle connections,
# sustained steps with freshness, single-event HTTP against nginx; StoreInsert; QueryBench; every micro-benchmark once) to prove they work, against the Release
# build above. No timings asserted.
if [[ -x perf/run-all.sh ]]; then
    echo "== perf smoke (perf/run-all.sh --smoke)"
    started=$SECONDS
    waited timeout --kill-after=30s "$SUITE_TIMEOUT" perf/run-all.sh --smoke --no-build --out "$RESULTS/perf" > "$RESULTS/perf-smoke.log" 2>&1
    status=$?
    grep -E '^== perf' "$RESULTS/perf-smoke.log"
    # One count per part of the runner: "== perf: NAME: done in N s" or "...: FAILED ...".
    p="$(grep -cE '^== perf: .*: done in' "$RESULTS/perf-smoke.log")"
    f="$(grep -cE '^== perf: .*: FAILED' "$RESULTS/perf-smoke.log")"
    if [[ $status -ne 0 && $f -eq 0 ]]; then f=1; fi
    if [[ $f -ne 0 ]]; then
        tail -n 60 "$RESULTS/perf-smoke.log"
        suites_failed+=("perf smoke")
    fi
    passed=$((passed + p)); failed=$((failed + f))
    timed "perf smoke" "$started"
fi

# Coverage-guided fuzzing (docs/security.md, "Fuzzing"): a short bounded pass of each target from its
# checked-in corpus, one count per target. A crash or hang fails it and leaves the input under
# .cache/test-results/fuzz/TARGET/.
echo "== fuzz (fuzz/run.sh, ${FUZZ_SECONDS:=15} s per target)"
started=$SECONDS
if waited timeout --kill-after=30s "$SUITE_TIMEOUT" fuzz/run.sh --build > "$RESULTS/fuzz-build.log" 2>&1; then
    # Two targets at a time: each fuzzer is one process on one core.
    for pair in "frames batch" "validator query"; do
        fuzz_pid=()
        for target in $pair; do
            timeout --kill-after=30s "$SUITE_TIMEOUT" fuzz/run.sh --no-build "$target" "$FUZZ_SECONDS" \
                > "$RESULTS/fuzz-$target.line" 2>>"$RESULTS/fuzz-$target.err" &
            fuzz_pid[$target]=$!
        done
        for target in $pair; do
            if wait "${fuzz_pid[$target]}"; then
                passed=$((passed + 1))
            else
                failed=$((failed + 1)); suites_failed+=("fuzz $target")
                tail -n 5 "$RESULTS/fuzz-$target.err"
            fi
            cat "$RESULTS/fuzz-$target.line"
        done
    done
else
    tail -n 20 "$RESULTS/fuzz-build.log"
    failed=$((failed + 4)); suites_failed+=("fuzz build")
fi
timed fuzz "$started"

# Deployment manifests (deploy/kubernetes): every overlay rendered and checked offline against the
# Kubernetes and Istio schemas and across objects (selectors, ports, keys, subsets, settings).
[[ -f deploy/test/package.json ]] && run_npm_suite deploy deploy/test

# CI keeps only the end of this output: name each failed .NET test there with the first line of its
# message (the full text is in .cache/test-results/SUITE.trx).
report_failed_tests() {
    local trx
    for trx in "$RESULTS"/*.trx; do
        [[ -f "$trx" ]] || continue
        perl -0777 -ne '
            while (/<UnitTestResult\b([^>]*?)(?:\/>|>(.*?)<\/UnitTestResult>)/gs) {
                my ($attributes, $body) = ($1, $2 // "");
                next unless $attributes =~ /outcome="Failed"/;
                my ($test) = $attributes =~ /testName="([^"]*)"/;
                my ($message) = $body =~ /<Message>(.*?)<\/Message>/s;
                $message = (split /\n/, $message // "")[0] // "";
                $message = substr($message, 0, 300);
                my $line = "failed: $test: $message";
                my %entity = (quot => q("), apos => "\x27", lt => "<", gt => ">", amp => "&");
                $line =~ s/&(quot|apos|lt|gt|amp);/$entity{$1}/g;
                print "$line\n";
            }' "$trx"
    done
}

if [[ ${#suites_failed[@]} -gt 0 ]]; then
    report_failed_tests
    echo "failing: ${suites_failed[*]}"
fi
printf 'time: %s; total %d s\n' "$(IFS=,; echo "${timings[*]}" | sed 's/,/, /g')" "$SECONDS"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
