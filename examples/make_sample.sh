#!/usr/bin/env bash
# Re-create examples/sample.wav: ~10 s of synthetic English speech, 16 kHz mono PCM16.
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp --suffix .wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us -s 150 -w "$tmp" \
  "Welcome to moss. This short recording was made with a speech synthesizer. It lets you try transcription, questions and captions from the command line."
sox "$tmp" -r 16000 -c 1 -b 16 sample.wav
