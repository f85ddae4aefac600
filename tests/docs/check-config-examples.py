#!/usr/bin/env python3
"""Every configuration in conf/ and every configuration example in the
docs and man pages, checked with `udpmuxd -t`, so none can rot.

usage: check-config-examples.py UDPMUXD SRCDIR

- conf/**/*.conf and dist/udpmux.conf: `udpmuxd -t -c FILE` as they are.
- Markdown (README.md, docs/**/*.md, python/README.md) and scdoc man pages
  (docs/man/*.scd): every fenced block that holds a [listen], [udpmux] or
  [route NAME] section. A fragment (a route alone) gets a [listen] on
  127.0.0.1:1 and a final drop route; nothing else is changed. In a shell
  block, every `udpmuxd ... -l/-r ...` quick-mode command line is run with -t.
- A Markdown block preceded by `<!-- config-check: skip REASON -->` is left
  out (say why: e.g. it needs a key file).
- Users and groups the examples name (user =, group =, allow = user:/group:)
  are added to a private copy of /etc/passwd and /etc/group (mount
  namespace), as an operator would have created them.

Exit 0 when all pass; otherwise every failure with FILE:LINE of the example.
"""
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

SECTION = re.compile(r"^\[(listen|udpmux|route [^\]]+)\]\s*$", re.M)
FENCE = re.compile(r"^(\s*)```")


def blocks(path):
    """(first line number, language, text, skipped) of each fenced block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang = lines[i].strip()[3:].strip()
        skip = i > 0 and "config-check: skip" in lines[i - 1] or (
            i > 1 and not lines[i - 1].strip() and "config-check: skip" in lines[i - 2])
        start, body = i + 2, []
        i += 1
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        text = "\n".join(body)
        if path.endswith(".scd"):
            # scdoc: tab-indented blocks, \\ for a backslash
            text = "\n".join(l[1:] if l.startswith("\t") else l for l in body).replace("\\\\", "\\")
        out.append((start, lang, text, skip))
    return out


def cases(src):
    """[(where, argv-tail, config text or None)]"""
    found = []
    for f in sorted(glob.glob(os.path.join(src, "conf", "**", "*.conf"), recursive=True)) + [
            os.path.join(src, "dist", "udpmux.conf")]:
        if os.path.exists(f):
            found.append((os.path.relpath(f, src), ["-c", f], None))
    docs = [os.path.join(src, "README.md"), os.path.join(src, "python", "README.md")]
    docs += sorted(glob.glob(os.path.join(src, "docs", "**", "*.md"), recursive=True))
    docs += sorted(glob.glob(os.path.join(src, "docs", "man", "*.scd")))
    for f in docs:
        if not os.path.exists(f):
            continue
        rel = os.path.relpath(f, src)
        for line, lang, text, skip in blocks(f):
            if skip:
                continue
            if SECTION.search(text) and lang in ("", "ini", "conf"):
                if "[listen]" not in text:
                    text = "[listen]\naddress = 127.0.0.1:1\n\n" + text
                if "[route " not in text:
                    text += "\n\n[route zz-check]\nmatch = any\naction = drop\n"
                found.append((f"{rel}:{line}", None, text))
            elif lang in ("", "sh", "shell", "console", "bash"):
                # quick-mode command lines (continuation lines joined)
                joined = re.sub(r"\\\n\s*", " ", text)
                for n, cmd in enumerate(joined.split("\n")):
                    cmd = cmd.strip().lstrip("$ ").split(" #")[0].split("&&")[0].strip()
                    if re.match(r"^(sudo )?udpmuxd\s", cmd) and re.search(r"\s-[lr]\s", cmd):
                        words = shlex.split(cmd)
                        words = words[words.index("udpmuxd") + 1:]
                        found.append((f"{rel}:{line}", [w for w in words if w not in ("-t", "-T")], None))
        # quick-mode one-liners in running text: `udpmuxd -l ... -r ...`
        for n, ln in enumerate(open(f, encoding="utf-8"), 1):
            for m in re.finditer(r"`(udpmuxd\s[^`]*)`", ln):
                if re.search(r"\s-[lr]\s", m.group(1)):
                    words = shlex.split(m.group(1))[1:]
                    found.append((f"{rel}:{n}", [w for w in words if w not in ("-t", "-T")], None))
    return found


def names(text):
    users, groups = set(), set()
    for m in re.finditer(r"^user\s*=\s*(\S+)", text, re.M):
        users.add(m.group(1))
    for m in re.finditer(r"^group\s*=\s*(\S+)", text, re.M):
        groups.add(m.group(1))
    for m in re.finditer(r"\b(user|group):([A-Za-z_][\w.-]*)", text):
        (users if m.group(1) == "user" else groups).add(m.group(2))
    return users, groups


def main():
    udpmuxd, src = sys.argv[1], sys.argv[2]
    found = cases(src)
    if len(found) < 10:
        print(f"FAIL: only {len(found)} examples found under {src}")
        return 1
    tmp = tempfile.mkdtemp(prefix="umx-cfgcheck.")
    users, groups = set(), set()
    runs = []
    for i, (where, argv, text) in enumerate(found):
        if text is not None:
            path = os.path.join(tmp, f"{i:03d}.conf")
            with open(path, "w") as f:
                f.write(text)
            argv = ["-c", path]
        else:
            if argv[0] == "-c":
                text = open(argv[1]).read()
            else:
                text = ""
        u, g = names(text)
        users |= u
        groups |= g
        runs.append((where, argv))
    # the users and groups the examples name, in a private /etc/passwd
    missing_u = sorted(x for x in users if subprocess.run(["getent", "passwd", x],
                                                          capture_output=True).returncode)
    missing_g = sorted(x for x in groups | users if subprocess.run(["getent", "group", x],
                                                                   capture_output=True).returncode)
    prefix = []
    if missing_u or missing_g:
        if os.geteuid() != 0:
            print(f"SKIP: examples name users {missing_u} / groups {missing_g}; needs root")
            return 77
        passwd, group = os.path.join(tmp, "passwd"), os.path.join(tmp, "group")
        with open(passwd, "w") as f:
            f.write(open("/etc/passwd").read())
            for n, u in enumerate(missing_u):
                f.write(f"{u}:x:{64000 + n}:{64000 + n}::/nonexistent:/usr/sbin/nologin\n")
        with open(group, "w") as f:
            f.write(open("/etc/group").read())
            for n, g in enumerate(missing_g):
                f.write(f"{g}:x:{64100 + n}:\n")
        os.chmod(passwd, 0o644)
        os.chmod(group, 0o644)
        prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                  f'mount --bind {passwd} /etc/passwd && mount --bind {group} /etc/group && exec "$@"',
                  "sh"]
    bad = 0
    for where, argv in runs:
        p = subprocess.run(prefix + [udpmuxd, "-t"] + argv, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            bad += 1
            msg = (p.stderr or p.stdout).strip().replace(tmp + "/", "")
            print(f"FAIL {where}: udpmuxd -t exit {p.returncode}: {msg}")
        else:
            print(f"ok   {where}")
    print(f"{len(runs) - bad}/{len(runs)} configuration examples pass udpmuxd -t")
    subprocess.run(["rm", "-rf", tmp])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
