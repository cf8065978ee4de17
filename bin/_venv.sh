# Sourced by bin/demo and bin/test: make the virtualenv and install what they need, again whenever a
# requirements file or pyproject.toml changes. VENV and PYTHON pick another one (.ci/run's Django 6 line).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp=$VENV/.requirements.sha256
want=$(cat pyproject.toml requirements.txt requirements-dev.txt requirements-browser.txt ${VENV_CONSTRAINTS:-} \
  | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  # VENV_CONSTRAINTS: a pip constraints file, e.g. .ci/django6.txt to test the newest Django.
  "${pip[@]}" -r requirements-dev.txt -r requirements-browser.txt ${VENV_CONSTRAINTS:+-c "$VENV_CONSTRAINTS"}
  echo "$want" > "$stamp"
fi
