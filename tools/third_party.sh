#!/usr/bin/env bash
# Copies google/api, google/rpc and google/type .proto sources out of the installed
# googleapis-common-protos wheel into third_party/googleapis, for buf (offline).
set -euo pipefail
python="${1:-.venv/bin/python}"
dest="${2:-third_party/googleapis}"
src=$("$python" -c 'import pathlib, google.api; print(pathlib.Path(google.api.__path__[0]).parent)')
rm -rf "$dest"
for pkg in api rpc type; do
  mkdir -p "$dest/google/$pkg"
  cp "$src/$pkg/"*.proto "$dest/google/$pkg/"
done
