# Shared set-up for scripts/demo and scripts/test: a .venv with the project in it.
# Sourced, not run. Uses only what a fresh Debian + Python 3.11 machine has.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
VENV_PY="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"
# Byte-code caching matters for start-up time; some environments switch it off.
unset PYTHONDONTWRITEBYTECODE

pip_install() {
    "$VENV_PY" -m pip install --disable-pip-version-check -q "$@"
}

apt_install() {
    # apt_install PKG... : install Debian packages when root and missing.
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "==> not root: cannot install ${missing[*]} (tests that need them will fail)" >&2
        return 0
    fi
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1
        apt-get install -y -q "${missing[@]}" >/dev/null
    }
}
