#!/usr/bin/env bash
# Create the virtual environment that contains caikit 0.29.1, the baseline that the
# benchmarks compare caikit_mm against. caikit is never a dependency of caikit_mm.
#
# Usage: benchmarks/setup_caikit_env.sh [VENV_DIR]
#   VENV_DIR defaults to benchmarks/.venv-caikit (git-ignored).
#   PYTHON selects the interpreter that creates the venv (default: python3.11,
#   then python3).
#
# The script is idempotent: it exits early when VENV_DIR already has
# caikit 0.29.1 installed.
#
# caikit 0.29.1 does not depend on torch: its wheel metadata lists no torch
# requirement in the base install, and `import caikit` does not import torch.
# The base install is all that caikit.load, caikit.core.ModelManager and the
# LOCAL trainer need. If a future change pulls torch in, set
# CAIKIT_TORCH_WHEEL to a local CPU wheel (for example
# /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl) and the
# script installs it first, so that pip does not download a CUDA build.
set -euo pipefail

readonly CAIKIT_VERSION="0.29.1"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv_dir="${1:-${script_dir}/.venv-caikit}"

log() {
    echo "setup_caikit_env: $*" >&2
}

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "${PYTHON}"
    elif command -v python3.11 >/dev/null 2>&1; then
        echo "python3.11"
    else
        echo "python3"
    fi
}

installed_caikit_version() {
    # Prints the caikit version installed in the venv, or nothing.
    "${venv_dir}/bin/python" - <<'EOF' 2>/dev/null || true
from importlib.metadata import PackageNotFoundError, version

try:
    print(version("caikit"))
except PackageNotFoundError:
    pass
EOF
}

main() {
    if [[ -x "${venv_dir}/bin/python" ]]; then
        local current
        current="$(installed_caikit_version)"
        if [[ "${current}" == "${CAIKIT_VERSION}" ]]; then
            log "caikit ${CAIKIT_VERSION} is already installed in ${venv_dir}"
            return 0
        fi
        log "found venv ${venv_dir} with caikit '${current:-none}'; installing"
    else
        local python
        python="$(pick_python)"
        log "creating venv ${venv_dir} with $(command -v "${python}")"
        "${python}" -m venv "${venv_dir}"
    fi

    local pip=("${venv_dir}/bin/python" -m pip --disable-pip-version-check)
    "${pip[@]}" install --quiet --upgrade pip

    if [[ -n "${CAIKIT_TORCH_WHEEL:-}" ]]; then
        log "installing torch from ${CAIKIT_TORCH_WHEEL}"
        "${pip[@]}" install --quiet "${CAIKIT_TORCH_WHEEL}"
    fi

    log "installing caikit==${CAIKIT_VERSION}"
    "${pip[@]}" install --quiet "caikit==${CAIKIT_VERSION}"

    if "${venv_dir}/bin/python" -c "import importlib.util, sys; \
sys.exit(importlib.util.find_spec('torch') is None)"; then
        log "NOTE: torch is installed in ${venv_dir}"
    fi

    log "installed caikit $(installed_caikit_version) in ${venv_dir}"
}

main "$@"
