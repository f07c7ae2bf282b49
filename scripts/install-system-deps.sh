#!/bin/sh
# Install the Debian packages the test suite needs and the venv cannot provide:
#   qemu-utils  qemu-img, the independent referee for the VHD files the simulator reads and writes
#   curl        the reference client of bench/vdi_transfer.py
#   rpm         rpmbuild and rpm -qp, to build and inspect the dom0 plugins' RPM (make rpm)
#   rpmlint     checks that RPM
#   lintian     checks the dom0 plugins' .deb (make deb; dpkg-deb itself comes with dpkg)
#   rsync       the simulated dom0's rsync (migration.transfer_vhd), run on files under its root
#   xorriso     the simulated dom0's ISO tools: mkisofs and loop mounts of ISOs (ipxe.inject)
#   e2fsprogs   mke2fs, which the simulated dom0's mkfs runs on a partition image file
#   openssl     the openssl command, with which the consumer tests encrypt as Nova does
# Idempotent: packages already present are left alone and nothing runs apt. Needs root or
# passwordless sudo when something is missing; exits non-zero with a message when it cannot install.
set -eu

# command the package provides -> package name
NEEDED="qemu-img:qemu-utils curl:curl rpmbuild:rpm rpmlint:rpmlint lintian:lintian rsync:rsync
xorriso:xorriso mke2fs:e2fsprogs openssl:openssl"

# A command counts as present on PATH or in the sbin directories (mke2fs lives there, and a
# non-root PATH often lacks them).
have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=""
for pair in $NEEDED; do
    command_name=${pair%%:*}
    package=${pair#*:}
    if have "$command_name"; then
        echo "install-system-deps: $command_name present ($package)"
    else
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "install-system-deps: missing Debian packages:$missing" >&2
    echo "install-system-deps: not root and no passwordless sudo; install them with" >&2
    echo "    sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: missing packages:$missing, and this is not a Debian-like system" >&2
    echo "install-system-deps: (no apt-get); install their equivalents by hand" >&2
    exit 1
fi

apt_install() {
    # shellcheck disable=SC2086 # $as_root and $missing are word lists on purpose
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y --no-install-recommends $missing
}

echo "install-system-deps: installing:$missing"
if ! apt_install; then
    # A fresh machine often has no package lists yet: fetch them once and try again.
    echo "install-system-deps: install failed; running apt-get update and retrying"
    $as_root apt-get update
    if ! apt_install; then
        echo "install-system-deps: could not install:$missing" >&2
        exit 1
    fi
fi

for pair in $NEEDED; do
    command_name=${pair%%:*}
    if ! have "$command_name"; then
        echo "install-system-deps: $command_name still missing after the install" >&2
        exit 1
    fi
done
echo "install-system-deps: installed:$missing"
