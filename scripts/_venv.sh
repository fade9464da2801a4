# shellcheck shell=bash
# Shared by scripts/serve and scripts/test: make .venv with Python 3.11+ and install the project into it,
# again only when pyproject.toml changed.
ensure_venv() {
  local spec=$1 python=${PYTHON:-python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: snapshot-orchestrator needs Python 3.11 or newer; $python is $("$python" -V 2>&1)" >&2
    echo "       set PYTHON=/path/to/python3.11 and run again" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed-$(echo "$spec" | tr -c 'a-z' '_')"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing $spec into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e "$spec"
    touch "$stamp"
  fi
}
