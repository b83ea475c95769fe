#!/usr/bin/env bash
# Subtitles for every recording under a folder: SRT, VTT and JSON, mirrored into subs/.
# Safe to re-run: finished files are skipped, changed ones redone.
#   MOSS_MODEL=/path/to/MOSS-Audio-4B-Instruct examples/subtitles.sh recordings/ subs/
#   MOSS_SERVER=http://localhost:8000/v1 examples/subtitles.sh recordings/ subs/   # or a vLLM server
set -uo pipefail
in=${1:-examples}
out=${2:-subs}
moss transcribe "$in" --srt --vtt --json -o "$out" --skip-existing --errors "$out/failed.jsonl"
status=$?  # 1 when some file failed: they are listed in failed.jsonl, the rest are done
# Then, e.g., every cue that mentions "budget", with its time:
grep -r -h -B2 -i --include='*.srt' budget "$out" || true
exit $status
