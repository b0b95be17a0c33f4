#!/usr/bin/env bash
# Installs the Debian packages the test suites need (test.sh calls this first).
#
# Contract: idempotent and quiet when nothing is missing. Each entry of TEST_DEPS below is
# "command:package": when the command is not on PATH (an absolute path: not executable there),
# the package is installed. `apt-get update` runs at most once, and only when something is missing. As root it installs; otherwise it prints
# one line naming what to install and exits non-zero (tests would fail later with a worse message).
# A suite that needs another program adds one line to TEST_DEPS; nothing else changes.
set -euo pipefail

TEST_DEPS=(
    # The browser agents' tests (agents/test/browser) drive Debian's Chromium via playwright-core.
    "chromium:chromium"
    # The agents' build and tests, and scripts/fetch-chdb.sh (the engine ships as an npm package).
    "npm:npm"
    # The control-plane suites start a throwaway PostgreSQL cluster of their own (initdb + pg_ctl,
    # tests/Shared/PostgresServer.cs): they need the server binaries, not a running service.
    # Debian 12 ships PostgreSQL 15.
    "/usr/lib/postgresql/15/bin/initdb:postgresql"
)

missing=()
for dep in "${TEST_DEPS[@]}"; do
    command -v "${dep%%:*}" >/dev/null 2>&1 || missing+=("${dep#*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps.sh: missing Debian packages, install them first: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "install-test-deps.sh: missing packages (${missing[*]}) and no apt-get to install them with" >&2
    exit 1
}

echo "install-test-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q "${missing[@]}" >&2
