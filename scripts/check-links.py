#!/usr/bin/env python3
"""Checks every relative link of README.md and docs/*.md: `make lint` runs it.

A relative link must name a file or directory that exists (relative to the
Markdown file that holds it), and its `#anchor`, if any, must be the GitHub
slug of a heading of the target Markdown file (of the file itself for a bare
`#anchor`). External links (http, https, mailto, ...) are not checked: no
network. Links inside code blocks and code spans are not links.

GitHub's slug of a heading: its text as rendered (inline code keeps its text,
a link keeps its label, emphasis marks go), lowercased, every character that
is not a letter, a digit, `_`, `-` or a space removed, each space turned into
`-`; a heading whose slug came before gets `-1`, then `-2`, ...

Usage: scripts/check-links.py [FILE.md ...]   (default: README.md docs/*.md)
Exits 1 with one line per broken link (file:line: link: why), 0 when all hold.
"""

import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [label](target "title") and ![alt](target); the label may hold one level of [].
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_HREF = re.compile(r"""<a\s[^>]*href=["']([^"']+)["']""", re.IGNORECASE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def strip_inline(text):
    """A heading's text as GitHub renders it, before slugging."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their label
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return text


def slug(text):
    out = []
    for char in strip_inline(text).strip().lower():
        category = unicodedata.category(char)
        if char in "-_" or category[0] in "LN" or category == "Mn":
            out.append(char)
        elif char == " ":
            out.append("-")
    return "".join(out)


def lines_outside_code(text):
    """(line number, line) of every line not inside a fenced code block."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
                continue
            yield number, line
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
            fence = None


def anchors(path, cache={}):
    """The GitHub slugs of every heading of a Markdown file."""
    if path not in cache:
        seen = {}
        slugs = set()
        previous = ""
        for _, line in lines_outside_code(path.read_text(encoding="utf-8")):
            heading = None
            match = ATX_HEADING.match(line)
            if match:
                heading = match.group(2)
            elif previous.strip() and SETEXT_UNDERLINE.match(line) and not previous.lstrip().startswith(("-", "*", "|", ">")):
                heading = previous
            previous = line
            if heading is None:
                continue
            base = slug(heading)
            count = seen.get(base, 0)
            seen[base] = count + 1
            slugs.add(base if count == 0 else f"{base}-{count}")
        # Explicit anchors: <a name="..."> or id="...".
        for found in re.findall(r"""<a\s[^>]*(?:name|id)=["']([^"']+)["']""", path.read_text(encoding="utf-8")):
            slugs.add(found)
        cache[path] = slugs
    return cache[path]


def links(path):
    """(line number, target) of every link in a Markdown file."""
    for number, line in lines_outside_code(path.read_text(encoding="utf-8")):
        without_code = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        definition = REFERENCE_DEFINITION.match(without_code)
        if definition:
            yield number, definition.group(1)
            continue
        for match in INLINE_LINK.finditer(without_code):
            yield number, match.group(1)
        for match in HTML_HREF.finditer(without_code):
            yield number, match.group(1)


def problems_of(path):
    for number, target in links(path):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        where, _, anchor = target.partition("#")
        resolved = path if where == "" else (path.parent / where).resolve()
        label = f"{path.relative_to(ROOT)}:{number}: {target}"
        if where.startswith("/"):
            yield f"{label}: absolute path (write it relative to {path.parent.relative_to(ROOT) or '.'})"
            continue
        if not resolved.exists():
            yield f"{label}: no such file {where}"
            continue
        if ROOT not in resolved.parents and resolved != ROOT:
            yield f"{label}: outside the repository"
            continue
        if anchor and resolved.suffix.lower() == ".md":
            if anchor not in anchors(resolved):
                close = sorted(a for a in anchors(resolved) if a[:6] == anchor[:6])
                hint = f" (headings nearby: {', '.join(close[:5])})" if close else ""
                yield f"{label}: no heading #{anchor} in {resolved.relative_to(ROOT)}{hint}"


def main(argv):
    files = [Path(arg).resolve() for arg in argv] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    problems = [problem for path in files for problem in problems_of(path)]
    checked = sum(1 for path in files for _ in links(path))
    if problems:
        print(f"check-links: {len(problems)} broken link(s) of {checked} in {len(files)} file(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"check-links: {checked} links in {len(files)} files, every relative link and anchor resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
