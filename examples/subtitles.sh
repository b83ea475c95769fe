#!/usr/bin/env bash
# Subtitles for every recording under a folder, sentence-level SRT and VTT plus JSON, into subs/.
#   MOSS_MODEL=/path/to/MOSS-Audio-4B-Instruct examples/subtitles.sh recordings/ subs/
#   MOSS_SERVER=http://localhost:8000/v1 examples/subtitles.sh recordings/ subs/   # or a vLLM server
set -euo pipefail
in=${1:-examples}
out=${2:-subs}
find "$in" -type f \( -name '*.wav' -o -name '*.flac' -o -name '*.mp3' -o -name '*.ogg' \) -print0 |
  xargs -0 moss transcribe --srt --vtt --json -o "$out"
# Then, e.g., every cue that mentions "budget", with its time:
grep -h -B2 -i budget "$out"/*.srt || true
