#!/usr/bin/env sh
# Build the one-folder desktop bundle dist/torchwork/ with PyInstaller (Linux, macOS;
# on Windows run the same pyinstaller command, see the README). `make package` runs it
# after installing the `package` extra. PYTHON picks the interpreter (default .venv's).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
rm -rf dist/torchwork
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/torchwork.spec
if [ "$(uname -s)" = Linux ]; then
    # Desktop integration beside the program; the README says where they go.
    cp packaging/torchwork.desktop packaging/torchwork.png dist/torchwork/
fi
echo "built dist/torchwork/ ($(du -sh dist/torchwork | cut -f1)): run dist/torchwork/torchwork"
