#!/bin/bash
# claude-iso.sh — the same job done the way people write it today: a typical
# start-claude.sh, kept here as the benchmark's baseline (c).
#
#   claude-iso.sh [--env-file F] [--home H] [--] [COMMAND [ARGS...]]
#
# Source the env file, make the scratch home, merge onboarding and folder trust into
# .claude.json with jq under flock (temp file + mv, so a crash cannot truncate it),
# drop the credential variables that outrank the token, exec.
#
# Like the scripts it stands for, it rewrites .claude.json on every start, seeded or
# not: checking first would cost a second jq run on the same file. It does not validate
# the token, the home's owner or mode, symlinks, or claude's own mkdir lock.
set -euo pipefail

env_file=${CLAUDE_ISO_ENV_FILE:-$HOME/.config/claude-auth-sync/claude-oauth.env}
home=${CLAUDE_ISO_HOME:-$HOME/.local/state/claude-iso/home}
while [ $# -gt 0 ]; do
  case $1 in
    --env-file) env_file=$2; shift 2 ;;
    --home) home=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || set -- claude

set -a
# shellcheck source=/dev/null
. "$env_file"
set +a
: "${CLAUDE_CODE_OAUTH_TOKEN:?no CLAUDE_CODE_OAUTH_TOKEN in $env_file}"

mkdir -p "$home"
chmod 700 "$home"
cfg=$home/.claude.json
dir=$(pwd -P)

(
  flock 9
  [ -s "$cfg" ] || echo '{}' >"$cfg"
  tmp=$(mktemp "$cfg.XXXXXX")
  jq --arg dir "$dir" \
    '.hasCompletedOnboarding = true | .projects[$dir].hasTrustDialogAccepted = true' \
    "$cfg" >"$tmp"
  mv -f "$tmp" "$cfg"
) 9>"$home/.start-claude.lock"

unset ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN CLAUDE_CONFIG_DIR \
  CLAUDE_SECURESTORAGE_CONFIG_DIR ANTHROPIC_CONFIG_DIR ANTHROPIC_PROFILE \
  CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR \
  CLAUDE_CODE_USE_BEDROCK CLAUDE_CODE_USE_VERTEX
export HOME=$home
exec "$@"
