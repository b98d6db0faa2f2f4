#!/usr/bin/env python3
"""Writes a realistic `.claude.json` for the launch benchmark.

    gen_claude_json.py OUT TARGET_BYTES TRUSTED_DIR [--unseeded]

The shape follows what Claude Code itself keeps in a long-lived home (see
shared/claude-code-facts.md): top-level bookkeeping (userID, firstStartTime, tipsHistory,
cachedChangelog, mcpServers, …) and a `projects` map, one entry per folder ever opened,
each with allowedTools, a prompt `history` (with pasted contents: multi-line text, quotes,
escapes, non-ASCII), per-project mcpServers, exampleFiles and last-session statistics.
Project entries are added until the file reaches TARGET_BYTES; TRUSTED_DIR is appended
last (as claude appends a newly opened folder) with hasTrustDialogAccepted: true, and
hasCompletedOnboarding is true (with the answers to claude's start-up questions claude-iso
seeds) — unless --unseeded. Written the way claude writes it,
JSON.stringify(config, null, 2). Deterministic (fixed seed), no network.
"""
import json
import random
import sys
import uuid

WORDS = (
    "fix the failing test in refactor module add logging to handler why does build "
    "break on CI rename config option explain this error migrate to async update "
    "README with install steps the parser should reject empty keys make clippy happy "
    "write a property test for benchmark launch path review my diff please commit"
).split()
TOOLS = [
    "Bash(cargo test:*)", "Bash(cargo build:*)", "Bash(git status)", "Bash(git diff:*)",
    "Bash(npm test:*)", "Bash(npm run lint:*)", "Bash(pytest:*)", "Bash(ls:*)",
    "Bash(rg:*)", "Edit", "Write", "WebFetch(domain:docs.rs)", "mcp__github__get_issue",
    "Bash(make:*)", "Bash(go test:*)", "Read(//etc/**)",
]
LANGS = ["rs", "py", "ts", "go", "md", "toml", "json", "sh"]


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def pasted(rng):
    # A pasted snippet: code or a log, with the characters JSON has to escape.
    lines = []
    for i in range(rng.randint(3, 30)):
        lines.append(
            f'    let x{i} = parse("{sentence(rng, 3)}")?; // naïve → “quoted” \\ tab\there'
        )
    return "\n".join(lines)


def history(rng):
    out = []
    for _ in range(rng.randint(2, 20)):
        entry = {"display": sentence(rng, rng.randint(3, 30)), "pastedContents": {}}
        if rng.random() < 0.08:
            entry["display"] += " [Pasted text #1 +%d lines]" % rng.randint(3, 30)
            entry["pastedContents"] = {
                "1": {"id": 1, "type": "text", "content": pasted(rng)}
            }
        out.append(entry)
    return out


def project(rng, trusted):
    p = {
        "allowedTools": rng.sample(TOOLS, rng.randint(0, 8)),
        "history": history(rng),
        "mcpContextUris": [],
        "mcpServers": {},
        "enabledMcpjsonServers": [],
        "disabledMcpjsonServers": [],
        "hasTrustDialogAccepted": trusted,
        "ignorePatterns": [],
        "projectOnboardingSeenCount": rng.randint(0, 4),
        "hasClaudeMdExternalIncludesApproved": False,
        "hasClaudeMdExternalIncludesWarningShown": False,
    }
    if rng.random() < 0.3:
        p["mcpServers"] = {
            "github": {
                "type": "stdio",
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_TOKEN}"},
            },
            "postgres": {
                "type": "stdio",
                "command": "uvx",
                "args": ["mcp-server-postgres", "postgresql://localhost/dev"],
                "env": {},
            },
        }
    if rng.random() < 0.6:
        p["exampleFiles"] = [
            f"src/{rng.choice(WORDS)}.{rng.choice(LANGS)}" for _ in range(5)
        ]
        p["exampleFilesGeneratedAt"] = 1_730_000_000_000 + rng.randint(0, 10**10)
    p.update(
        {
            "lastCost": round(rng.random() * 4, 6),
            "lastAPIDuration": rng.randint(1000, 900_000),
            "lastToolDuration": rng.randint(0, 100_000),
            "lastDuration": rng.randint(1000, 9_000_000),
            "lastLinesAdded": rng.randint(0, 900),
            "lastLinesRemoved": rng.randint(0, 400),
            "lastTotalInputTokens": rng.randint(0, 90_000),
            "lastTotalOutputTokens": rng.randint(0, 90_000),
            "lastTotalCacheCreationInputTokens": rng.randint(0, 900_000),
            "lastTotalCacheReadInputTokens": rng.randint(0, 9_000_000),
            "lastTotalWebSearchRequests": 0,
            "lastModelUsage": {
                "claude-sonnet-4-5-20250929": {
                    "inputTokens": rng.randint(0, 90_000),
                    "outputTokens": rng.randint(0, 90_000),
                    "cacheReadInputTokens": rng.randint(0, 9_000_000),
                    "cacheCreationInputTokens": rng.randint(0, 900_000),
                    "webSearchRequests": 0,
                    "costUSD": round(rng.random() * 4, 6),
                }
            },
            "lastSessionId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "hasCompletedProjectOnboarding": rng.random() < 0.5,
        }
    )
    return p


def main():
    out, target, trusted_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seeded = "--unseeded" not in sys.argv[4:]
    rng = random.Random(20250101)
    changelog = "\n".join(
        f"## 2.0.{i}\n\n- {sentence(rng, 12)}\n- {sentence(rng, 9)}" for i in range(60)
    )
    doc = {
        "numStartups": 412,
        "installMethod": "native",
        "autoUpdates": False,
        "theme": "dark",
        "tipsHistory": {f"tip-{i}": rng.randint(1, 400) for i in range(30)},
        "promptQueueUseCount": 17,
        "userID": "%064x" % rng.getrandbits(256),
        "firstStartTime": "2025-03-01T09:12:44.120Z",
        "mcpServers": {},
        "projects": {},
        "cachedChangelog": changelog,
        "changelogLastFetched": 1_760_000_000_000,
        "lastReleaseNotesSeen": "2.0.37",
        "subscriptionNoticeCount": 0,
        "hasAvailableSubscription": False,
        "fallbackAvailableWarningThreshold": 0.5,
        "isQualifiedForDataSharing": False,
        "shiftEnterKeyBindingInstalled": True,
    }
    if seeded:
        doc["hasCompletedOnboarding"] = True
        doc["lastOnboardingVersion"] = "2.0.37"
        # The answers claude-iso seeds to claude's start-up questions (src/layout.rs).
        doc["fullscreenUpsellSeenCount"] = 3
        doc["hasSeenAutoDefaultNudge"] = True

    # Grow `projects` until the pretty-printed file reaches the target size.
    skeleton = len(json.dumps(doc, indent=2, ensure_ascii=False).encode())
    size, i = skeleton, 0
    while size < target:
        name = f"/home/dev/src/{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}"
        entry = project(rng, rng.random() < 0.9)
        doc["projects"][name] = entry
        # Each entry is indented two levels deeper than at top level.
        size += len(json.dumps({name: entry}, indent=2, ensure_ascii=False).encode()) + 2 * entry_lines(entry)
        i += 1
    doc["projects"][trusted_dir] = project(rng, seeded)

    text = json.dumps(doc, indent=2, ensure_ascii=False)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"{out}: {len(text.encode())} bytes, {len(doc['projects'])} projects", file=sys.stderr)


def entry_lines(entry):
    return json.dumps(entry, indent=2, ensure_ascii=False).count("\n") + 1


if __name__ == "__main__":
    main()
