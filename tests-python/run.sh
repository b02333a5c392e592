#!/usr/bin/env bash
# Runs the Python suites (tests-python/*/) against the mock binary, with
# the pinned official clients of each suite's requirements.txt in a cached
# virtualenv. Where Python or pip cannot provide them, it says why and
# exits 0 ("python imds tests skipped: <reason>"); test failures exit
# non-zero.
#
#   SKYFLEET_MOCK_BIN   the skyfleet-mock binary (default: the debug build
#                       in $CARGO_TARGET_DIR, or target/)
#   SKYFLEET_PY_CACHE   where the virtualenv lives (default:
#                       ~/.cache/skyfleet/python-imds)
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
suite="$here/imds"
requirements="$suite/requirements.txt"
cache="${SKYFLEET_PY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skyfleet/python-imds}"
venv="$cache/venv"

skip() {
    echo "python imds tests skipped: $1"
    exit 0
}

bin="${SKYFLEET_MOCK_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/skyfleet-mock}"
if [ ! -x "$bin" ]; then
    echo "python imds tests: no mock binary at $bin (run cargo build -p skyfleet-mock first, or set SKYFLEET_MOCK_BIN)" >&2
    exit 1
fi

python="$(command -v python3 || true)"
[ -n "$python" ] || skip "python3 is not installed"

# Reuse the virtualenv while the pins are unchanged.
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    mkdir -p "$cache"
    "$python" -m venv "$venv" >/dev/null 2>&1 || skip "cannot create a virtualenv (is python3-venv installed?)"
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >"$cache/pip.log" 2>&1; then
        rm -rf "$venv"
        skip "pip cannot install the pinned clients (see $cache/pip.log)"
    fi
    cp "$requirements" "$venv/requirements.txt"
fi

export SKYFLEET_MOCK_BIN="$bin"
cd "$suite" && exec "$venv/bin/python" -m pytest -q -p no:cacheprovider .
