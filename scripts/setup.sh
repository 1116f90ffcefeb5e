#!/usr/bin/env bash
# Installs what autotune needs on a fresh Debian machine: the cross toolchains and
# QEMU from Debian, then the package with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  gcc-arm-none-eabi libnewlib-arm-none-eabi         # Cortex-M, Cortex-A7
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf  # RISC-V rv32 profiles
  gcc-aarch64-linux-gnu                             # Cortex-A53
  libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross pkgconf  # embedded-Linux libraries
  gcc-arc-linux-gnu                                 # ARC EM
  gcc-mipsel-linux-gnu                              # the out-of-tree MIPS example plugin
  qemu-user qemu-system-arm qemu-system-misc        # the second, independent executor
  postgresql                                        # the DB tests' throwaway server (a team's DB)
  cmake make                                        # build files and examples/firmware
  chromium                                          # opens report.html in a test
)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "setup: installing autotune (editable) with its test extras"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
# The example plugins under examples/plugins/ are not installed here: their tests
# (tests/plugins/) pip-install them into a fresh virtual environment, so the rest of
# the suite runs with the built-in plugins only.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
echo "setup: done"
