#!/usr/bin/env bash
# Set a checkout up for development on a fresh machine: a headless browser (Debian's
# chromium, for the HTML report's browser test), a Redis server (Debian's redis-server,
# which the shared-state tests start on a free port of their own) and .venv with the
# project, its dev tools and the example plugin. Safe to run again: what is there
# already is kept. The README's test command and .ci/run both start with it.
#
#   bash scripts/setup.sh             everything
#   bash scripts/setup.sh --browser   only the browser
#   bash scripts/setup.sh --redis     only the Redis server
set -euo pipefail
here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
cd "$here/.."

# The names tests/test_html_report.py looks for on PATH, in its order.
BROWSERS=(chromium chromium-browser google-chrome google-chrome-stable)

find_browser() {
  local name
  for name in "${BROWSERS[@]}"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

# apt-get install "$@" as root: directly, or through sudo (which may ask for a
# password). Fails, saying why, when neither is possible.
apt_install() {
  local as_root=()
  if ! command -v apt-get >/dev/null 2>&1; then
    printf 'setup: no apt-get on this machine, so %s cannot be installed for you\n' "$*" >&2
    return 1
  fi
  if [ "${EUID:-1}" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      printf 'setup: installing %s needs root, and there is no sudo\n' "$*" >&2
      return 1
    fi
    as_root=(sudo)
  fi
  printf '== apt-get install %s\n' "$*"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

how_to_get_a_browser() {
  printf '%s\n' \
    "setup: no headless browser found (looked for ${BROWSERS[*]} on PATH)." \
    "  The HTML report's browser test will FAIL until there is one. Install one, then run" \
    "  this again:" \
    "    Debian:         sudo apt-get install -y chromium" \
    "    Ubuntu:         sudo apt-get install -y chromium-browser" \
    "    Fedora:         sudo dnf install -y chromium" \
    "    macOS:          brew install --cask google-chrome, then put it on PATH as" \
    "                    google-chrome (ln -s \"/Applications/Google Chrome.app/Contents/MacOS/Google Chrome\" ...)" >&2
}

setup_browser() {
  local found
  if found="$(find_browser)"; then
    printf '== browser: %s\n' "$found"
    return 0
  fi
  if apt_install chromium && found="$(find_browser)"; then
    printf '== browser: %s (installed)\n' "$found"
    return 0
  fi
  # Carry on: the tests run, and the browser test fails with the same advice.
  how_to_get_a_browser
}

how_to_get_redis() {
  printf '%s\n' \
    "setup: no redis-server on PATH." \
    "  The shared-state tests (tests/state) will FAIL until there is one. Install it, then" \
    "  run this again:" \
    "    Debian, Ubuntu: sudo apt-get install -y redis-server" \
    "    Fedora:         sudo dnf install -y redis" \
    "    macOS:          brew install redis" >&2
}

setup_redis() {
  # Only the binary is needed: the tests start their own servers (no persistence, a
  # free port), so the system service Debian's package enables is left as it is.
  if command -v redis-server >/dev/null 2>&1; then
    printf '== redis-server: %s\n' "$(command -v redis-server)"
    return 0
  fi
  if apt_install redis-server && command -v redis-server >/dev/null 2>&1; then
    printf '== redis-server: %s (installed)\n' "$(command -v redis-server)"
    return 0
  fi
  # Carry on: the tests run, and the shared-state ones fail with the same advice.
  how_to_get_redis
}

setup_python() {
  echo "== python packages (.venv)"
  if [ ! -x .venv/bin/python ] && ! python3 -m venv .venv; then
    # Debian and Ubuntu ship venv apart from python3.
    rm -rf .venv
    apt_install python3-venv || {
      echo "setup: python3 -m venv failed; install Python's venv module (Debian: python3-venv)" >&2
      exit 1
    }
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]' -e examples/least-recent-plugin
}

case "${1:-}" in
  --browser) setup_browser ;;
  --redis) setup_redis ;;
  "")
    setup_browser
    setup_redis
    setup_python
    ;;
  *)
    echo "usage: bash scripts/setup.sh [--browser | --redis]" >&2
    exit 2
    ;;
esac
