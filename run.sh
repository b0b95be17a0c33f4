#!/usr/bin/env bash
# Starts the whole system on the embedded default: ingest + rollup + query in one process on
# 127.0.0.1:5080, with a demo merchant and site. Fetches the ClickHouse engine library on first
# use. Any arguments are passed to the `analytics` command instead, for example:
#   ./run.sh                      # serve, with the demo site
#   ./run.sh demo-traffic         # simulated visitors against the running server (60 s)
#   ./run.sh sites create --domain shop.example --merchant "Shop Ltd"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export CHDB_LIB_PATH="$(scripts/fetch-chdb.sh | tail -n1)"
# uap-core, crawler-user-agents, GeoLite2 and referer-parser data for the enrichment rules (docs/enrichment.md).
export ANALYTICS_ENRICHMENT_DATA="$(scripts/fetch-enrichment-data.sh | tail -n1)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Host -c Release -nologo -v quiet -clp:ErrorsOnly >&2
# The browser agent served at /agent.js (and used by the demo shop at /demo/).
if [[ ! -f agents/packages/agent/dist/agent.min.js ]]; then
    (cd agents && npm ci --no-audit --no-fund --loglevel=error && npm run build) >&2 \
        || echo "run.sh: could not build the browser agent; /agent.js and /demo/ will not work" >&2
fi
# The dashboard served at / (dashboard/dist; docs/dashboard.md), rebuilt when its sources changed.
if [[ ! -f dashboard/dist/index.html || -n "$(find dashboard/src dashboard/scripts dashboard/package.json -newer dashboard/dist/index.html -print -quit)" ]]; then
    (cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run build) >&2 \
        || echo "run.sh: could not build the dashboard; / will say how to build it" >&2
fi
if [[ $# -eq 0 ]]; then
    set -- serve --demo
fi
exec dotnet src/Host/bin/Release/net10.0/analytics.dll "$@" --data "${ANALYTICS_DATA:-$PWD/.data}"
