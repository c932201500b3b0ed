# Shared by scripts/demo and scripts/test: bring a fresh Debian machine to the point where
# edgeprof builds. Sourced, not run. Installs only what is missing.
set -euo pipefail

EDGEPROF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EDGEPROF_VENV:-$EDGEPROF_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {
    # apt_install PKG...: install Debian packages, as root (or through sudo when available).
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            log "missing system packages: $* (run as root: apt-get install $*)"; return 1
        fi
    fi
    log "installing system packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

header_missing() {
    # header_missing HEADER: true when the C compiler cannot include HEADER.
    printf '#include <%s>\nint main(void){return 0;}\n' "$1" | cc -x c -c -o /dev/null - 2>/dev/null && return 1
    return 0
}

ensure_build_tools() {
    local need=()
    command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
    command -v "$PYTHON" >/dev/null 2>&1 || need+=(python3 python3-dev python3-venv)
    if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
    need=()
    if header_missing linux/perf_event.h; then need+=(linux-libc-dev); fi
    local pyinc
    pyinc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    [ -f "$pyinc/Python.h" ] || need+=(python3-dev)
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
    if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
}

ensure_venv() {
    # ensure_venv EXTRAS: a virtual environment with edgeprof installed (editable) and EXTRAS.
    local extras="${1:-}"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtual environment $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    log "installing edgeprof${extras:+[$extras]} (builds the C core)"
    local pip_log="$VENV/pip-install.log"
    if ! "$VENV/bin/python" -m pip install -e "$EDGEPROF_ROOT${extras:+[$extras]}" >"$pip_log" 2>&1; then
        tail -40 "$pip_log" >&2
        log "pip install failed; the full log is $pip_log"
        return 1
    fi
}
