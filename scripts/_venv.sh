# Sourced by scripts/demo, scripts/test, scripts/verify, scripts/bench and scripts/gateway-sim.
# Creates .venv with a Python >= 3.12 found on this machine and installs the
# project with its test extras; re-installs only when pyproject.toml changed.
set -euo pipefail

CACHEPIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$CACHEPIN_ROOT/.venv"

_cachepin_is_py312() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

_cachepin_find_python() {
    local candidate
    for candidate in ${CACHEPIN_PYTHON:-} python3.13 python3.12 python3 python \
        "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
        [ -n "$candidate" ] || continue
        if _cachepin_is_py312 "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

cachepin_venv() {
    local stamp="$VENV/.cachepin-installed" want
    want="$(cat "$CACHEPIN_ROOT/pyproject.toml" | cksum)"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ] || ! _cachepin_is_py312 "$VENV/bin/python"; then
        local python
        if ! python="$(_cachepin_find_python)"; then
            echo "cachepin: no Python >= 3.12 found (tried python3.13, python3.12, python3, pyenv versions)." >&2
            echo "cachepin: install one, or point CACHEPIN_PYTHON at it: CACHEPIN_PYTHON=/path/to/python3.12 $0" >&2
            exit 2
        fi
        echo "cachepin: creating .venv with $python ($("$python" --version 2>&1))" >&2
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
    fi
    echo "cachepin: installing the project and its test extras into .venv (once)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$CACHEPIN_ROOT[test]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "$want" >"$stamp"
}
