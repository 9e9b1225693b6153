#!/usr/bin/env bash
# The one way Strata is installed: by the Makefile (make demo / make test), by CI, by the install tests and by
# the images.
#
#   deploy/install.sh PROFILE VENV [--wheel FILE]
#   deploy/install.sh wheel DIR
#
# PROFILE  client    the client library and the query commands (pip install strata)
#          serving   + the gateway and the local servers `strata up` starts, without PyTorch (strata[serving])
#          training  + training, export, ingest and evaluation: PyTorch and Ray; everything (strata[training])
#          dev       training and the test tools, installed editable from this checkout (what `make` uses)
# VENV     the virtual environment to create (or reuse); PYTHON names the interpreter (default python3.11)
# --wheel  install this built wheel instead of this checkout (not with dev)
# wheel    build Strata's wheel into DIR and print its path
#
# Builds run on a copy of the checkout, so that nothing is written into it but the .venv.
set -euo pipefail

usage() { echo "usage: deploy/install.sh client|serving|training|dev VENV [--wheel FILE] | wheel DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
profile=$1 target=$2 wheel=
shift 2
while [ $# -gt 0 ]; do
    case $1 in
        --wheel) [ $# -ge 2 ] || usage; wheel=$2; shift 2 ;;
        *) usage ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || { echo "deploy/install.sh: $python not found; Strata needs Python 3.11 (set PYTHON=...)" >&2; exit 1; }

copy_checkout() {   # the checkout without its environment, build outputs or git folder, in a temporary folder
    copy=$(mktemp -d)
    trap 'rm -rf "$copy"' EXIT
    tar -C "$root" --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' --exclude=./.git \
        -cf - . | tar -C "$copy" -xf -
}

case $profile in
    client) extras= ;;
    serving) extras="[serving]" ;;
    training) extras="[training]" ;;
    dev) extras="[training,test]" ;;
    wheel)
        copy_checkout
        mkdir -p "$target"
        "$python" -m pip wheel --quiet --no-deps --wheel-dir "$target" "$copy"
        ls "$(cd "$target" && pwd)"/strata-*.whl
        exit 0 ;;
    *) echo "deploy/install.sh: unknown profile '$profile' (client, serving, training, dev or wheel)" >&2; exit 2 ;;
esac
if [ -n "$wheel" ]; then
    [ "$profile" != dev ] || { echo "deploy/install.sh: dev installs this checkout editable; --wheel is for the other profiles" >&2; exit 2; }
    [ -f "$wheel" ] || { echo "deploy/install.sh: wheel '$wheel' not found (build one: deploy/install.sh wheel DIR)" >&2; exit 2; }
    source="$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")$extras"
elif [ "$profile" = dev ]; then
    source="$root$extras"
else
    copy_checkout
    source="$copy$extras"
fi

[ -x "$target/bin/python" ] || "$python" -m venv "$target"
"$target/bin/pip" install --quiet --upgrade "pip>=24" "setuptools>=68,<81" wheel
if [ "$profile" = dev ]; then
    "$target/bin/pip" install --quiet -e "$source"
else
    "$target/bin/pip" install --quiet "$source"
fi
echo "installed strata ($profile) into $target"
