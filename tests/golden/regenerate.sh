#!/usr/bin/env bash
# Regenerates tests/golden/: a 1,000-entry C2SP tiled log written by the
# independent Python writer (tests/fixtures/c2sp_log.py), with a fixed seed so
# the bytes are reproducible (Ed25519 is deterministic). Never edit by hand.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$here/log"
python3 "$here/../fixtures/c2sp_log.py" "$here/log" golden.tally.dev/log 1000 \
  --seed 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
  --checkpoint-at 300 > "$here/log.pub"
