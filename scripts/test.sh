#!/usr/bin/env bash
# Install caikit_mm with every test extra into .venv, then run the test suite.
# torch==2.13.0 is installed first: the CI machines serve a CPU build of that
# release, while a bare torch requirement would download a CUDA build of several GB.
# pytest's exit status passes through: 5 (no tests collected) fails too.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet torch==2.13.0
# Naming torch again pins it: without the pin, pip's resolver backtracks
# through older torch releases (each a large CUDA download) while it settles
# the boto3 and botocore versions that moto and s3fs accept.
.venv/bin/pip install --quiet torch==2.13.0 -e ".[test]" \
    ./examples/iris_library ./examples/catalog_finder
exec .venv/bin/python -m pytest "$@"
