#!/usr/bin/env bash
# Sets up a development/run environment on a fresh Debian machine:
# .venv with pinned Python dependencies, the MicroPython WebAssembly runtime
# from npm (lockfile), and Debian's mosquitto and postgresql when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -r requirements.txt
.venv/bin/pip install --quiet -e codecs/python -e .

if ! command -v node >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
npm ci --silent --no-audit --no-fund

# WeasyPrint (the documents' PDF) lays text out with Pango and subsets fonts with HarfBuzz
if [ "$(id -u)" = 0 ] && ! { ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 && ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 \
    libharfbuzz-subset0 fonts-dejavu-core
fi

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto
    # The tests start their own broker on 127.0.0.1; the packaged service is not needed.
    systemctl disable --now mosquitto >/dev/null 2>&1 || true
  else
    echo "note: mosquitto is not installed and this is not root; MQTT tests will be skipped" >&2
  fi
fi

# PostgreSQL server binaries for the multi-instance store tests: each test run creates a
# throwaway cluster with initdb (gateway/vistelse_gateway/testing.py, Postgres); the
# packaged cluster and service are not used.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
    systemctl disable --now postgresql >/dev/null 2>&1 || true
  else
    echo "note: PostgreSQL is not installed and this is not root; PostgreSQL store tests will be skipped" >&2
  fi
fi
