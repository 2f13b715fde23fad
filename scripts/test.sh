#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine, then run the whole suite:
# ruff, mypy (against a regular install of the package), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests start on loopback: redis-server / redis-cli / redis-benchmark, PostgreSQL,
# headless Chromium. Installed when we are root on Debian (CI and developer machines here).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  for pkg in redis-server redis-tools postgresql chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install -q -e ".[dev,django,sqlalchemy,server,iouring]" 2>&1 \
  | grep -v '^WARNING: Location' || true

echo "== ruff"
.venv/bin/ruff check .

echo "== mypy"
# mypy cannot follow the editable install's import hook: type-check a regular install instead.
rm -rf .cache/typecheck
.venv/bin/python -m pip install -q --no-deps --target .cache/typecheck . 2>&1 \
  | grep -v '^WARNING: Location' || true
(cd .cache && MYPYPATH="$PWD/typecheck" ../.venv/bin/mypy --config-file ../pyproject.toml -p faster_backend)

echo "== pytest"
# The install compiles the store's hot paths (setup.py); a missing C compiler would leave the
# pure-Python reference in use, which must not pass unnoticed here.
export FASTER_BACKEND_REQUIRE_NATIVE="${FASTER_BACKEND_REQUIRE_NATIVE:-1}"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
