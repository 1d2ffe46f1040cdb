#!/usr/bin/env bash
# Builds one product as the container image ships it: release mode, the Swift standard library and FoundationEssentials
# linked statically, symbols stripped. The Dockerfile runs this very script, so a local run checks the same flags.
# The version and commit are stamped into Sources/KubeNodeDNS/BuildInfo.swift for the build and put back after:
# VERSION and GIT_COMMIT when set (the release workflow and the Dockerfile's build args), else `git describe`
# and `git rev-parse` when this is a git checkout.
# usage: deploy/build-release.sh PRODUCT OUTPUT_DIR
set -euo pipefail
product=${1:?usage: build-release.sh PRODUCT OUTPUT_DIR}
out=${2:?usage: build-release.sh PRODUCT OUTPUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
info=Sources/KubeNodeDNS/BuildInfo.swift
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || true)}
commit=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}
if [ -f "$info" ] && { [ -n "$version" ] || [ -n "$commit" ]; }; then
  cp "$info" "$info.unstamped"
  trap 'mv "$info.unstamped" "$info"' EXIT
  [ -n "$version" ] && sed -i "s|static let version = \".*\"|static let version = \"${version#v}\"|" "$info"
  [ -n "$commit" ] && sed -i "s|static let commit = \".*\"|static let commit = \"${commit:0:12}\"|" "$info"
fi
swift build -c release --product "$product" --static-swift-stdlib -Xswiftc -gnone
cp "$(swift build -c release --show-bin-path)/$product" "$out/$product"
strip "$out/$product"
