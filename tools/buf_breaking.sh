#!/usr/bin/env bash
# Fails (exit 100) when the contracts in the work tree break consumers of the
# contracts at REF (default: the previous commit, HEAD~1).
# buf's own `.git#ref=` input cannot be used offline: third_party/ is ignored by git,
# so both sides are built from folders that have the same third-party protos beside them.
set -euo pipefail
ref="${1:-HEAD~1}"
root=$(git rev-parse --show-toplevel)
# BUF may be absolute, relative to the caller's directory, or a name on PATH; the
# old side is built from another directory, so make it absolute before moving.
buf="${BUF:-$root/node_modules/.bin/buf}"
case "$buf" in
  /*) ;;
  */*) buf="$PWD/$buf" ;;
  *) buf=$(command -v "$buf") || { echo "buf breaking: ${BUF} not found on PATH." >&2; exit 2; } ;;
esac
cd "$root"
if ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
  echo "buf breaking: no commit $ref to compare with; skipped."
  exit 0
fi
if ! git cat-file -e "$ref:buf.yaml" 2>/dev/null || ! git cat-file -e "$ref:protos/asan" 2>/dev/null; then
  echo "buf breaking: $ref has no contracts yet; nothing to compare with."
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$ref" protos buf.yaml | tar -x -C "$work"
mkdir -p "$work/third_party"
cp -r third_party/googleapis "$work/third_party/"
(cd "$work" && "$buf" build -o "$work/old.binpb")
"$buf" build -o "$work/new.binpb"
"$buf" breaking "$work/new.binpb" --against "$work/old.binpb" --exclude-imports
echo "buf breaking: no breaking change against $ref."
