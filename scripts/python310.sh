#!/bin/sh
# Print the path of a working Python 3.10 (Rasa 3.6 refuses 3.11), or fail with one clear line.
if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
    python3.10 -c 'import sys; print(sys.executable)'
    exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
    v=$(pyenv versions --bare 2>/dev/null | grep '^3\.10' | tail -1)
    if [ -n "$v" ] && PYENV_VERSION="$v" python3.10 -c 'import sys' >/dev/null 2>&1; then
        PYENV_VERSION="$v" python3.10 -c 'import sys; print(sys.executable)'
        exit 0
    fi
fi
echo "error: Python 3.10 is required (Rasa 3.6 does not run on 3.11+); install it, e.g. 'pyenv install 3.10' or 'apt-get install python3.10'" >&2
exit 1
