# The Python client's unittest suite (clients/python), as TAP.
. "$(dirname "$0")/suite.sh"
suite_need "$WX_PYTHON"
"$WX_PYTHON" -c 'import msgpack' 2>/dev/null ||
    { echo "1..0 # SKIP python3-msgpack is not installed"; exit 0; }
suite_workdir python
suite_run "python client: unittest" env PYTHONDONTWRITEBYTECODE=1 "$WX_PYTHON" -m unittest discover -s tests -v
