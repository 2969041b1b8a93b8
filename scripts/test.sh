#!/usr/bin/env bash
# The test command on the README's first screen, and the one CI runs (.ci/run): from a
# fresh clone to a verdict. It sets the checkout up (scripts/setup.sh: chromium when no
# headless browser is found, .venv with the packages) and runs the whole suite.
# Arguments go to pytest: bash scripts/test.sh -q -k report
set -euo pipefail
here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
cd "$here/.."

bash scripts/setup.sh
echo "== tests"
# shellcheck disable=SC1091
. .venv/bin/activate
exec python -m pytest "$@"
