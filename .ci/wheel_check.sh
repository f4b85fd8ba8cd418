#!/usr/bin/env bash
# Installs the bot as a user does and runs it from outside the checkout: builds the wheel, installs it
# (with the image's pinned dependencies) into a fresh virtualenv, and from an empty folder runs the
# console script, `python -m bot check --help` and the demo, which must show posts. An editable
# install from the checkout once hid a package that every real install left out.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
# built from a copy of the files git knows (tracked, or new and not ignored): a build/ folder left in the
# checkout by an earlier build would otherwise lend the wheel what the package list leaves out
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$work/src"
"$work/venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel=$(ls "$work/dist"/sonoran_dispatch_bot-*.whl)
echo "built $(basename "$wheel")"
"$work/venv/bin/python" -m pip install --quiet -c "$root/constraints.txt" "$wheel"

mkdir "$work/elsewhere"
cd "$work/elsewhere"  # no source tree here: only the installed package can answer
export PATH="$work/venv/bin:$PATH"
unset PYTHONPATH SONORAN_BOT_CONFIG

echo "\$ sonoran-dispatch-bot --version"
sonoran-dispatch-bot --version
echo "\$ python -m bot check --help"
python -m bot check --help | head -n 3
python - <<'PY'
import bot, cogs, pathlib, sys
for module in (bot, cogs):
    where = pathlib.Path(module.__file__).resolve()
    if "site-packages" not in where.parts:
        sys.exit(f"{module.__name__} was imported from {where}, not from the installed wheel")
print("imported from the installed wheel:", pathlib.Path(bot.__file__).resolve().parent)
PY
echo "\$ python -m bot demo --for 12"
python -m bot demo --for 12 > demo.out 2> demo.err || { cat demo.err; exit 1; }
head -n 12 demo.out
if ! grep -qE "911 call #[0-9]+" demo.out; then
    echo "the installed demo showed no post"; cat demo.err; exit 1
fi
if grep -q "Traceback" demo.err; then
    cat demo.err; exit 1
fi
echo "wheel check: ok (the installed demo posted $(grep -cE "911 call #[0-9]+" demo.out) call cards in 12 s)"
