#!/bin/sh
# Tune the two example models autotune ships (quick: --trials 1), emit them as the
# libraries kws and ad, build one mps2-an386 image with CMake and run it in QEMU.
# Usage: examples/firmware/run.sh [WORK_DIR]   (needs autotune, cmake, arm-none-eabi-gcc,
# qemu-system-arm; scripts/setup.sh installs them)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
python3 - "$work" <<'PY'
import sys
from pathlib import Path
from autotune.examples import autoencoder_model, quickstart_model
work = Path(sys.argv[1])
(work / "kws.tflite").write_bytes(quickstart_model())
(work / "ad.tflite").write_bytes(autoencoder_model())
PY
autotune "$work/kws.tflite" --target cortex-m4 --trials 1 --name kws --out "$work/kws"
autotune "$work/ad.tflite" --target cortex-m4 --trials 1 --name ad --out "$work/ad"
cmake -S "$here" -B "$work/build" -DCMAKE_TOOLCHAIN_FILE="$here/arm-none-eabi.cmake" \
    -DKWS_DIR="$work/kws/model" -DAD_DIR="$work/ad/model"
cmake --build "$work/build"
qemu-system-arm -M mps2-an386 -nographic -semihosting -kernel "$work/build/firmware.elf"
