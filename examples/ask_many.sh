#!/usr/bin/env bash
# Ask the same questions about every recording under a folder, in one run: JSON Lines on stdout, one
# object per file and question, in input order. The model loads once and each file's audio is encoded
# once, however many questions there are; a file that fails is named on stderr (and in failed.jsonl),
# the rest go on, and the exit status is 1.
#   MOSS_MODEL=/path/to/MOSS-Audio-4B-Instruct examples/ask_many.sh recordings/ > answers.jsonl
#   MOSS_SERVER=http://localhost:8000/v1 examples/ask_many.sh recordings/ > answers.jsonl   # or a vLLM server
set -uo pipefail
dir=${1:-examples}
moss ask "$dir" -Q "What language is spoken?" -Q "How many speakers are there?" --errors failed.jsonl --quiet
