#!/usr/bin/env bash
# Ask the same questions about every recording under a folder; JSON Lines on stdout, one object
# per file and question. Each file's audio is encoded once, however many questions follow.
#   MOSS_MODEL=/path/to/MOSS-Audio-4B-Instruct examples/ask_many.sh recordings/ > answers.jsonl
set -uo pipefail
dir=${1:-examples}
status=0
while IFS= read -r -d '' file; do
  # A file that fails is named on stderr; the loop goes on and the exit status says so.
  moss ask "$file" "What language is spoken?" "How many speakers are there?" --json --quiet || status=1
done < <(find "$dir" -type f \( -name '*.wav' -o -name '*.flac' -o -name '*.mp3' -o -name '*.ogg' \) -print0 | sort -z)
exit $status
