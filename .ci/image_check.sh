#!/usr/bin/env bash
# Builds the container image from the Dockerfile and starts it: the image's own entry point (tini, then
# `python -m bot`) as the image's user from its WORKDIR runs --version, `check --help` and the demo,
# which must show posts; then `podman stop` must end a running demo at once (tini forwards SIGTERM).
#
# Where no registry serves the Dockerfile's base image, a stand-in is made and stored under the exact
# name the FROM lines use: Debian <suite> from debootstrap (minbase) with Debian's python3 of the same
# minor version, pip and setuptools in /usr/local, and python at /usr/local/bin/python, as in the
# official image. It is marked with a `stand-in` label (which the bot image inherits); a real base
# already in local storage is used as it is. The stand-in also carries how this machine's pip reaches
# its package index (index-url, extra-index-url, trusted-host, proxy from /etc/pip.conf or PIP_*, and
# the CA bundle pip trusts), so that the build's pip does as the host's; nothing of it is in the repo,
# and the Dockerfile is built unchanged.
#
# Needs root, buildah and debootstrap (installed with apt-get when missing), podman optionally. Prints
# one "image check: skipped: ..." line and exits 0 where these cannot be installed or cannot start a
# container; fails when the image does not build, does not start, or its demo shows no post.
# Idempotent: the stand-in is reused and the build's layers are cached. REBUILD_STANDIN=1 makes the
# stand-in again; STANDIN_MIRROR names the Debian archive when apt's sources do not.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${IMAGE_CHECK_TIMEOUT:-1800}
if [ -z "${IMAGE_CHECK_INNER:-}" ]; then
    # the whole check is bounded: a hang anywhere fails it
    rc=0
    IMAGE_CHECK_INNER=1 timeout --kill-after=30 "$limit" bash "$0" "$@" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "image check: FAILED: not done within $limit s"
    fi
    exit "$rc"
fi

say() { echo "image check: $*"; }
why() { grep -v '^[[:space:]]*$' "$1" | tr '\n' ' ' | cut -c1-240; }  # a refusal, on one line
skip() { say "skipped: $*"; exit 0; }
fail() { say "FAILED: $*"; exit 1; }
began=$(date +%s)
lap=$began
took() { local now; now=$(date +%s); say "$1 ($((now - lap)) s)"; lap=$now; }

image=localhost/sonoran-dispatch-bot:image-check
recipe=2  # raise when the stand-in's recipe below changes: an older stand-in is then made again
work=""
containers=()
detached=""
cleanup() {
    if [ -n "$detached" ]; then podman rm -f -v "$detached" >/dev/null 2>&1 || true; fi
    for c in "${containers[@]}"; do
        if [ -n "$c" ]; then buildah rm "$c" >/dev/null 2>&1 || true; fi
    done
    if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- the tools ----------------------------------------------------------------------------------
[ "$(uname -s)" = Linux ] || skip "needs Linux (buildah, debootstrap)"
[ "$(id -u)" = 0 ] || skip "needs root for debootstrap and buildah's storage (running as uid $(id -u))"
want=()
for tool in buildah debootstrap runc podman; do
    command -v "$tool" >/dev/null || want+=("$tool")
done
if [ ${#want[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || skip "${want[*]} not installed, and no apt-get to install them"
    say "installing ${want[*]}"
    if ! { timeout 300 apt-get update -q && timeout 600 apt-get install -y -q "${want[@]}"; } \
        >/tmp/image-check-apt.log 2>&1; then
        # runc and podman only widen the choice of runtimes; buildah and debootstrap are needed
        timeout 600 apt-get install -y -q buildah debootstrap >>/tmp/image-check-apt.log 2>&1 \
            || skip "could not install buildah and debootstrap: $(tail -n 1 /tmp/image-check-apt.log)"
    fi
fi
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    skip "buildah or debootstrap is missing after apt-get install"
fi

# one check at a time on this machine: they share the image names
exec 9>/var/tmp/sonoran-image-check.lock
flock -w 1200 9 || fail "another image check held /var/tmp/sonoran-image-check.lock for 20 min"
work=$(mktemp -d /var/tmp/image-check.XXXXXX)

# --- the base: the one the FROM lines name, or its stand-in -------------------------------------
mapfile -t froms < <(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile | sort -u)
[ ${#froms[@]} = 1 ] || fail "the FROM lines name ${#froms[@]} images (${froms[*]}); this check stands in for one"
base=${froms[0]}
case $base in
    */*) ;;
    *) base=docker.io/library/$base ;;  # how buildah resolves a short name of the Docker library
esac
tag=${base##*:}                 # 3.11.14-slim-bookworm
suite=${tag##*-}                # bookworm
pyminor=$(echo "$tag" | cut -d. -f1,2)  # 3.11

label() { buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null; }
have_base=""
if buildah inspect --type image "$base" >/dev/null 2>&1; then
    made_by=$(label "$base" stand-in-recipe)
    if [ -z "$made_by" ]; then
        have_base="real"
    elif [ "$made_by" = "$recipe" ] && [ -z "${REBUILD_STANDIN:-}" ]; then
        have_base="stand-in"
    fi
fi

debian_sites() {  # the Debian archive and its security archive, as apt on this machine reaches them
    apt-cache policy 2>/dev/null | awk '
        /^ *[0-9]+ [a-z]+:\/\// { site = $2; next }
        /^ *release / && site != "" {
            if ($0 ~ /o=Debian,/ && $0 ~ /l=Debian-Security,/) { if (sec == "") sec = site }
            else if ($0 ~ /o=Debian,/ && $0 ~ /l=Debian,/) { if (main == "") main = site }
            site = ""
        }
        END { print main; print sec }'
}

make_standin() {
    local mirror security rootfs sites
    mirror=${STANDIN_MIRROR:-}
    security=${STANDIN_SECURITY_MIRROR:-}
    if [ -z "$mirror" ]; then
        command -v apt-cache >/dev/null || skip "no apt to name a Debian archive (set STANDIN_MIRROR)"
        sites=$(debian_sites)
        if [ -z "$(echo "$sites" | head -n 1)" ]; then
            timeout 300 apt-get update -q >/dev/null 2>&1 || true
            sites=$(debian_sites)
        fi
        mirror=$(echo "$sites" | sed -n 1p)
        security=${security:-$(echo "$sites" | sed -n 2p)}
    fi
    [ -n "$mirror" ] || skip "apt on this machine reaches no Debian archive for the stand-in (set STANDIN_MIRROR)"

    rootfs=$work/rootfs
    say "making a stand-in for $base: debootstrap $suite (minbase) with Debian's python3"
    timeout 900 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 5 "$work/debootstrap.log"; skip "debootstrap cannot make Debian $suite here"; }

    local inside=(chroot "$rootfs" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8)
    local version
    version=$("${inside[@]}" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    case $version in
        "$pyminor".*) ;;
        *) skip "Debian $suite's python3 is $version; no stand-in for Python $pyminor" ;;
    esac
    # as in the official image: pip and setuptools in /usr/local (here from Debian's own wheels, the
    # ones python3-venv uses), python and python3 in /usr/local/bin, and no EXTERNALLY-MANAGED marker
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    # shellcheck disable=SC2016  # $1 is the chroot's shell's
    "${inside[@]}" sh -c 'cd / && set -- /usr/share/python-wheels/pip-*.whl && python3 "$1/pip" install \
        --quiet --no-index --find-links /usr/share/python-wheels pip setuptools' 2>&1 \
        | grep -v "as the 'root' user" || true
    "${inside[@]}" /usr/local/bin/pip --version >/dev/null || fail "the stand-in has no pip in /usr/local"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"

    # apt as in the official image: the release, its updates and its security archive
    rm -f "$rootfs/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$rootfs/etc/apt/sources.list.d/debian.sources"

    # pip as this machine has it (index, trusted hosts, CA bundle); nothing of it is in the repo
    local bundle=${PIP_CERT:-}
    [ -n "$bundle" ] || bundle=$(python3 - <<'PY' 2>/dev/null || true
import configparser
c = configparser.ConfigParser()
c.read(["/etc/xdg/pip/pip.conf", "/etc/pip.conf"])
print(c.get("global", "cert", fallback=""))
PY
)
    [ -n "$bundle" ] || bundle=${SSL_CERT_FILE:-}
    if [ -n "$bundle" ] && [ -f "$bundle" ]; then
        cp "$bundle" "$rootfs/etc/ssl/certs/host-ca-bundle.pem"
        bundle=/etc/ssl/certs/host-ca-bundle.pem
    else
        bundle=""
    fi
    # only what reaches the index: the host's other settings (constraints, local wheel folders) name
    # files that are not in the image
    BUNDLE=$bundle python3 - "$rootfs/etc/pip.conf" <<'PY'
import configparser, os, sys
host = configparser.ConfigParser()
host.read(["/etc/xdg/pip/pip.conf", "/etc/pip.conf"])
out = configparser.ConfigParser()
out.add_section("global")
for key in ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "retries"):
    value = os.environ.get("PIP_" + key.upper().replace("-", "_")) or host.get("global", key, fallback="")
    # a local folder or file:// index of the host is not in the image
    kept = [v for v in value.split() if not v.startswith(("file:", "/"))]
    if kept:
        out.set("global", key, " ".join(kept))
if os.environ["BUNDLE"]:
    out.set("global", "cert", os.environ["BUNDLE"])
with open(sys.argv[1], "w") as f:
    out.write(f)
PY
    # apt and dpkg as Debian's own slim images set them: no package caches left in a layer, no
    # translations, no documentation (copyright files aside), man pages or locales
    printf '%s\n' \
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
        'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' >"$rootfs/etc/apt/apt.conf.d/docker-clean"
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/linda/*' \
        'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/man/*' \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,locale,man}/*
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb

    local ctr mnt
    ctr=$(buildah from --quiet scratch)
    containers+=("$ctr")
    mnt=$(buildah mount "$ctr")
    cp -a "$rootfs/." "$mnt/"
    buildah umount "$ctr" >/dev/null
    buildah config \
        --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --cmd python3 \
        --label stand-in-recipe="$recipe" \
        --label stand-in="for $base: Debian $suite minbase from debootstrap, Debian's Python $version" \
        "$ctr"
    buildah commit --quiet --rm "$ctr" "$base" >/dev/null
    containers=("${containers[@]/$ctr/}")
    rm -rf "$rootfs"
}

case $have_base in
    real) based="base: $base, found in local storage (not a stand-in)" ;;
    stand-in) based="base: the stand-in already stored as $base ($(label "$base" stand-in))" ;;
    *)
        make_standin
        based="base: stand-in made and stored as $base ($(label "$base" stand-in), $(($(date +%s) - lap)) s)"
        lap=$(date +%s)
        ;;
esac

# --- which runtime starts a container here --------------------------------------------------------
probe=$(buildah from --quiet --pull=never "$base")
containers+=("$probe")
runtime=()
found=""
refused=""
for choice in default runc chroot; do
    case $choice in
        default) runtime=() ;;
        runc) command -v runc >/dev/null || continue; runtime=(--runtime runc) ;;
        chroot) runtime=(--isolation chroot) ;;
    esac
    if timeout 120 buildah run "${runtime[@]}" "$probe" -- python -c 'import venv' >"$work/probe.log" 2>&1; then
        found=$choice
        break
    fi
    refused+="; $choice: $(why "$work/probe.log")"
done
[ -n "$found" ] || skip "buildah cannot start a container on this machine${refused}"
say "$based"
say "$(buildah --version) runs containers with ${runtime[*]:-its default runtime}${refused:+ (refused${refused#;})}"
offline=(--network none)  # the demo needs none; chroot isolation can only share the host's
if [ "$found" = chroot ]; then offline=(); fi

# --- the build: the Dockerfile unchanged, from the files git knows --------------------------------
mkdir "$work/context"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$work/context"
before=$(buildah containers --quiet --notruncate | sort)
previous=$(buildah images --quiet --noheading "$image" 2>/dev/null || true)
if ! timeout 1200 buildah bud "${runtime[@]}" --pull=never --format docker --layers --tag "$image" \
    "$work/context" >"$work/bud.log" 2>&1; then
    tail -n 30 "$work/bud.log"
    # a failed step leaves its working container behind
    mapfile -t left < <(comm -13 <(echo "$before") <(buildah containers --quiet --notruncate | sort))
    containers+=("${left[@]}")
    fail "the Dockerfile does not build"
fi
# the image this check built last time, unless it is this one (its build layers stay, as the cache)
if [ -n "$previous" ] && [ "$previous" != "$(buildah images --quiet --noheading "$image")" ]; then
    buildah rmi "$previous" >/dev/null 2>&1 || true
fi
took "built $image ($(buildah images --format '{{.Size}}' "$image" | head -n 1))"
# the Docker format keeps the HEALTHCHECK (OCI drops it)
buildah inspect --type image "$image" | python3 -c '
import json, sys
check = json.load(sys.stdin)["Docker"]["config"].get("Healthcheck")
if not check:
    sys.exit("image check: FAILED: the image has no HEALTHCHECK")
print("image check: healthcheck:", " ".join(check["Test"][1:]))'

# --- how the image is started: podman run as docker run would, or buildah run with its entry point --
starter=""
if command -v podman >/dev/null; then
    nofile=$(ulimit -Sn)
    if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
    nproc=$(ulimit -Su)
    if [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; then nproc=4096; fi
    # without systemd, no healthcheck timers; without CAP_SYS_RESOURCE, no rlimits above the host's
    refused=""
    for choice in default runc; do
        case $choice in
            default)
                podman=(podman)
                run=(run --rm --network none --no-healthcheck) ;;
            runc)
                command -v runc >/dev/null || continue
                podman=(podman --runtime runc --cgroup-manager cgroupfs --events-backend file)
                run=(run --rm --network none --no-healthcheck
                    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc") ;;
        esac
        if timeout 120 "${podman[@]}" "${run[@]}" "$base" python3 -c pass >"$work/probe.log" 2>&1; then
            starter=podman
            say "$(podman --version) starts it: ${podman[*]} ${run[*]} IMAGE${refused:+ (refused${refused#;})}"
            break
        fi
        refused+="; $choice: $(why "$work/probe.log")"
    done
fi
if [ -z "$starter" ]; then
    starter=buildah
    mapfile -t entry < <(buildah inspect --type image "$image" \
        | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["OCIv1"]["config"]["Entrypoint"]))')
    [ ${#entry[@]} -gt 0 ] || fail "the image has no entry point"
    say "buildah run starts it${refused:+ (podman refused${refused#;})}: buildah run ${runtime[*]} CONTAINER -- ${entry[*]} (the image's user, WORKDIR and env)"
fi

with=()    # options for the next start: -v and -e, as docker run and buildah run both take them
start() {  # the image's entry point with these arguments
    if [ "$starter" = podman ]; then
        timeout 120 "${podman[@]}" "${run[@]}" "${with[@]}" "$image" "$@"
    else
        fresh buildah run "${runtime[@]}" "${offline[@]}" "${with[@]}" CONTAINER -- "${entry[@]}" "$@"
    fi
}
start_python() {  # the image's python, in the image's WORKDIR as its user
    if [ "$starter" = podman ]; then
        timeout 120 "${podman[@]}" "${run[@]}" --entrypoint python "$image" "$@"
    else
        fresh buildah run "${runtime[@]}" "${offline[@]}" CONTAINER -- python "$@"
    fi
}
fresh() {  # this buildah command in a new container from the image, removed after it, as run --rm does
    local ctr code=0 arg args=()
    ctr=$(buildah from --quiet --pull=never "$image")
    for arg in "$@"; do
        if [ "$arg" = CONTAINER ]; then args+=("$ctr"); else args+=("$arg"); fi
    done
    timeout 120 "${args[@]}" || code=$?
    buildah rm "$ctr" >/dev/null
    return "$code"
}

echo "\$ IMAGE --version"
start --version >"$work/out" 2>&1 || { cat "$work/out"; fail "--version did not start"; }
cat "$work/out"
echo "\$ IMAGE check --help"
start check --help >"$work/out" 2>&1 || { cat "$work/out"; fail "check --help did not start"; }
head -n 3 "$work/out"
grep -q '^usage: ' "$work/out" || fail "check --help printed no usage"

# every module of the source tree is installed and imports (the installed package, not a source
# tree); the user and folder the Dockerfile sets; nothing to install anything with at run time
modules=$(cd "$work/context" && find bot cogs -name '*.py' ! -name __main__.py | sed 's|/__init__\.py$||; s|\.py$||; s|/|.|g' | sort)
cat >"$work/identity.py" <<'PY'
import importlib, importlib.util, os, pathlib, sys
problems = []
expected = sys.argv[1].split()
for name in expected:
    try:
        importlib.import_module(name)
    except Exception as error:  # each module that does not import is one line of the report
        problems.append(f"{name}: {error!r}")
import bot
where = pathlib.Path(bot.__file__).resolve()
print(f"uid {os.getuid()}, in {os.getcwd()}, Python {sys.version.split()[0]}, bot from {where.parent}; "
      f"{len(expected) - len(problems)} of the source tree's {len(expected)} modules import")
if os.getuid() != 10001:
    problems.append(f"runs as uid {os.getuid()}, not 10001")
if os.getcwd() != "/data":
    problems.append(f"starts in {os.getcwd()}, not /data")
if "site-packages" not in where.parts:
    problems.append("bot is not the installed package")
if importlib.util.find_spec("pip") is not None:
    problems.append("pip is in the image")
if problems:
    sys.exit("\n".join(problems))
PY
start_python -c "$(cat "$work/identity.py")" "$modules" >"$work/out" 2>&1 \
    || { cat "$work/out"; fail "the image lacks modules of the source tree, or runs as the wrong user"; }
cat "$work/out"

# as the Dockerfile says to use it: a config.toml at /config/config.toml, secrets in the environment,
# the state on /data. Offline (or with fake secrets) the CAD and Discord checks fail; the config and
# the state file must not.
echo "\$ IMAGE check  (config.example.toml at /config/config.toml, fake secrets)"
with=(-v "$work/context/config.example.toml:/config/config.toml:ro"
    -e SONORAN_BOT_DISCORD__TOKEN=image-check-fake-token -e SONORAN_BOT_SONORAN__API_KEY=image-check-fake-key)
code=0
start check >"$work/out" 2>&1 || code=$?
with=()
grep -vF "discord.client:" "$work/out" | head -n 12
if [ "$code" -gt 1 ] || grep -q Traceback "$work/out"; then fail "check ended with $code"; fi
grep -qE '^ok +configuration' "$work/out" || fail "check did not read /config/config.toml"
grep -qE '^ok +state file' "$work/out" || fail "check could not write its state file on /data as uid 10001"

echo "\$ IMAGE demo --for 10"
start demo --for 10 >"$work/demo.out" 2>"$work/demo.err" || { cat "$work/demo.err"; fail "the demo did not run"; }
head -n 16 "$work/demo.out"
posts=$(grep -cE "911 call #[0-9]+" "$work/demo.out" || true)
[ "$posts" -gt 0 ] || { cat "$work/demo.err"; fail "the image's demo showed no post"; }
if grep -q Traceback "$work/demo.err"; then cat "$work/demo.err"; fail "the demo printed a traceback"; fi
say "the image's demo posted $posts call cards in 10 s"
took "started the image: --version, check --help, imports, check with a config, demo"

# `docker stop` sends SIGTERM: tini passes it on and the bot ends, instead of a kill after the grace
if [ "$starter" = podman ]; then
    detached=sonoran-image-check-$$
    run_detached=()
    for arg in "${run[@]}"; do
        if [ "$arg" != --rm ]; then run_detached+=("$arg"); fi
    done
    timeout 120 "${podman[@]}" "${run_detached[@]}" --detach --name "$detached" "$image" demo --for 300 >/dev/null
    for _ in $(seq 1 60); do
        "${podman[@]}" logs "$detached" 2>&1 | grep -qE "911 call #[0-9]+" && break
        sleep 0.5
    done
    t0=$(date +%s%N)
    timeout 60 "${podman[@]}" stop --time 20 "$detached" >/dev/null || fail "podman stop failed"
    ms=$((($(date +%s%N) - t0) / 1000000))
    code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$detached")
    "${podman[@]}" rm -v "$detached" >/dev/null
    detached=""
    say "podman stop ended the running demo in $ms ms, exit code $code"
    [ "$ms" -lt 10000 ] || fail "SIGTERM did not end the bot: podman stop waited ${ms} ms"
    [ "$code" != 137 ] || fail "the bot was killed, not stopped"
else
    say "stop: not checked (buildah run cannot detach a container)"
fi

say "ok: $image ($(buildah images --format '{{.Size}}' "$image" | head -n 1)) built on a $( \
    [ "$have_base" = real ] && echo "real" || echo "stand-in") base and started, in $(($(date +%s) - began)) s"
