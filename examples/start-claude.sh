#!/bin/sh
# start-claude.sh: start Claude Code through claude-iso.
#
# A drop-in for the usual wrapper that sources a token file and runs `exec claude "$@"`:
# same arguments, same exit status, but claude gets a credential-free scratch HOME,
# only the setup-token, and no dialogs for the current directory.
#
#   start-claude.sh                     the interactive TUI here
#   start-claude.sh --continue          arguments go to claude unchanged
#   start-claude.sh --print 'Hi.'
#
# Settings, all optional (see claude-iso(1)):
#   CLAUDE_ISO_ENV_FILE   the token file; default: claude-iso's search order, e.g.
#                         ~/.config/claude-iso/token.env (mode 0600)
#   CLAUDE_ISO_HOME       the scratch home; default ~/.local/state/claude-iso/home
#   CLAUDE_BIN            the claude to run; default: claude on PATH
set -eu

# Agents usually want claude not to update itself mid-run; export
# DISABLE_AUTOUPDATER= (empty) before calling this script to allow it.
: "${DISABLE_AUTOUPDATER=1}"
export DISABLE_AUTOUPDATER

exec claude-iso -- "${CLAUDE_BIN:-claude}" "$@"
