#!/usr/bin/env bash
# Runs one Python suite (tests-python/SUITE/) against the mock binary, with
# the pinned official clients of the suite's requirements.txt in a cached
# virtualenv of its own:
#
#   tests-python/run.sh imds     the metadata services (botocore, google-auth)
#   tests-python/run.sh azure    ARM operations at time_scale 0.01 (azure-mgmt-*)
#   tests-python/run.sh ec2      EC2 templates, volumes, instant fleets (boto3)
#   tests-python/run.sh gce      Compute Engine at time_scale 0.01 (google-cloud-compute)
#   tests-python/run.sh tokens   token endpoints (azure-identity, msal, google-auth)
#
# Where Python or pip cannot provide the clients, it says why and exits 0
# ("python SUITE tests skipped: <reason>"); test failures exit non-zero.
#
#   SKYFLEET_MOCK_BIN   the skyfleet-mock binary (default: the debug build
#                       in $CARGO_TARGET_DIR, or target/)
#   SKYFLEET_PY_CACHE   where the suite's virtualenv lives (default:
#                       ~/.cache/skyfleet/python-SUITE)
set -u

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
name="${1:-}"
case "$name" in
    "" | */* | .*)
        echo "usage: $0 SUITE (one of: $(cd "$here" && ls -d */ | tr -d / | tr '\n' ' '))" >&2
        exit 2
        ;;
esac
suite="$here/$name"
requirements="$suite/requirements.txt"
if [ ! -f "$requirements" ]; then
    echo "python tests: no suite $suite (no requirements.txt)" >&2
    exit 2
fi
cache="${SKYFLEET_PY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skyfleet/python-$name}"
venv="$cache/venv"

skip() {
    echo "python $name tests skipped: $1"
    exit 0
}

bin="${SKYFLEET_MOCK_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/skyfleet-mock}"
if [ ! -x "$bin" ]; then
    echo "python $name tests: no mock binary at $bin (run cargo build -p skyfleet-mock first, or set SKYFLEET_MOCK_BIN)" >&2
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
cd "$suite" && exec "$venv/bin/python" -m pytest -q -s -p no:cacheprovider .
