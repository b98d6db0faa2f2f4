#!/bin/sh
# print.sh: ask Claude Code one thing, non-interactively, through claude-iso.
#
#   print.sh [-C DIR] PROMPT...
#   print.sh 'Summarise README.md in three lines.'
#   git diff | print.sh -C ~/src/app 'Review this diff.'
#
# Standard input goes to claude, the answer to standard output; claude-iso prints
# nothing but errors. The exit status is claude's, or claude-iso's 125 (no usable token,
# an unsafe scratch home), 126 or 127 (claude cannot be run / is not found).
#
# DIR (default: the current directory) is trusted and becomes claude's working
# directory. In a repository you do not control, consider adding
# `--setting-sources user` after --print: claude honours a project's
# .claude/settings.json in --print mode without asking (see SECURITY in claude-iso(1)).
set -eu

usage() {
    echo "usage: print.sh [-C DIR] PROMPT..." >&2
    exit 2
}

dir=.
if [ "${1-}" = -C ]; then
    [ $# -ge 2 ] || usage
    dir=$2
    shift 2
fi
[ $# -gt 0 ] || usage

exec claude-iso --quiet -C "$dir" -- claude --print --output-format text "$*"
