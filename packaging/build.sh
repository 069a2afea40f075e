#!/usr/bin/env bash
# Build dist/ewaste-sorter/: ewaste-app and ewaste-classify with Python inside, for a
# station PC without Python. The build runs in a clean virtual environment holding only the
# station's dependencies and PyInstaller, so nothing of the training stack can get in;
# check_bundle.py fails the build if it did anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/bundle
# build/lib: setuptools' staging folder keeps files since deleted from the tree (an old
# model), and copies a file only when it is newer than its staged copy (a retrained model
# moved in keeps its older time): `pip install .` would ship the stale one.
rm -rf "$work" build/lib dist/ewaste-sorter
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q . "pyinstaller>=6.10,<7"
(cd packaging && "../$work/venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath ../dist --workpath "../$work/pyinstaller" ewaste-sorter.spec)
"$work/venv/bin/python" packaging/check_bundle.py dist/ewaste-sorter
