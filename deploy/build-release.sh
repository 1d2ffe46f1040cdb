#!/usr/bin/env bash
# Builds one product as the container image ships it: release mode, the Swift standard library and Foundation
# linked statically, symbols stripped. The Dockerfile runs this very script, so a local run checks the same flags.
# usage: deploy/build-release.sh PRODUCT OUTPUT_DIR
set -euo pipefail
product=${1:?usage: build-release.sh PRODUCT OUTPUT_DIR}
out=${2:?usage: build-release.sh PRODUCT OUTPUT_DIR}
cd "$(dirname "$0")/.."
swift build -c release --product "$product" --static-swift-stdlib -Xswiftc -gnone
mkdir -p "$out"
cp "$(swift build -c release --show-bin-path)/$product" "$out/$product"
strip "$out/$product"
