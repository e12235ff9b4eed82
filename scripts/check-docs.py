#!/usr/bin/env python3
"""Checks the links in witness's documents; exits 1 naming every bad one.

Usage: scripts/check-docs.py [--book DIR]

Documents: README.md, CHANGELOG.md, the SDK READMEs and every chapter of the
book (docs/src/**/*.md). For each Markdown link or image outside code:

- a relative target must exist inside the repository; from a book chapter it
  must stay inside docs/src (the built book has nothing else);
- a `#anchor` must be a heading of the target file (or of the same file), by
  the slug rules that GitHub and mdBook share: lower case, spaces to `-`,
  everything but letters, digits, `-` and `_` dropped, `-1`, `-2`, ... for
  repeated headings; `<a id="...">` counts too;
- an external link (`https://...`) is an error: the documents are read from a
  clone, offline, so write an outside address as code text instead.

It also fails when a chapter in docs/src is missing from SUMMARY.md (mdBook
would not render it), and when a document mentions shared/DESIGN.md or cites
"DESIGN §N" (a clone has no DESIGN.md: link the book's page instead).

With --book DIR (the built book, e.g. target/book) it checks the rendered
HTML too: every link between the book's pages reaches a page that exists and
an element id on it.
"""

import html
import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
BOOK_SRC = ROOT / "docs" / "src"
TOP_DOCS = ["README.md", "CHANGELOG.md", "sdk-python/README.md", "sdk-ts/README.md"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\".*\")?\s*$")
HTML_ID = re.compile(r"<a\s+[^>]*?(?:id|name)=\"([^\"]+)\"")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def prose_lines(text):
    """(line number, line) for every line outside fenced code blocks."""
    fence = None
    for no, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            continue
        yield no, line


def slug(heading):
    """The anchor GitHub and mdBook give a heading's text."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = html.unescape(text).replace("**", "").replace("*", "")
    out = []
    for ch in text.strip().lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
        elif unicodedata.category(ch).startswith(("L", "N")):
            out.append(ch)
    return "".join(out)


def anchors(path, cache={}):
    """Every anchor a Markdown file defines."""
    if path not in cache:
        seen = {}
        found = set()
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            found.update(HTML_ID.findall(line))
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def links(text):
    """(line number, target) of every link outside code; a link's text may
    span lines."""
    lines = text.splitlines()
    kept = dict(prose_lines(text))
    prose = "\n".join(kept.get(no, "") for no in range(1, len(lines) + 1))
    # Code spans (which may span lines) become blanks of the same length.
    prose = re.sub(r"(`+)(.+?)\1", lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose, flags=re.S)
    for m in INLINE_LINK.finditer(prose):
        yield prose.count("\n", 0, m.start(1)) + 1, m.group(1)
    for no, line in enumerate(prose.split("\n"), 1):
        m = REF_DEF.match(line)
        if m:
            yield no, m.group(1)


def check_file(doc, problems):
    text = doc.read_text(encoding="utf-8")
    rel = doc.relative_to(ROOT)
    in_book = BOOK_SRC in doc.parents
    if "shared/DESIGN" in text:
        problems.append(f"{rel}: mentions shared/DESIGN.md, which a clone lacks")
    for no, line in prose_lines(text):
        if re.search(r"DESIGN(\.md)? ?§", line):
            problems.append(f"{rel}:{no}: cites DESIGN §: link the book's page instead")
    for no, target in links(text):
        where = f"{rel}:{no}: {target}"
        if not target:
            problems.append(f"{where}: empty link target")
            continue
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            problems.append(
                f"{where}: external link (the documents are read offline: "
                "write the address as code text)"
            )
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part)
        file = doc if not path_part else (doc.parent / path_part).resolve()
        if not file.exists():
            problems.append(f"{where}: no such file")
            continue
        limit = BOOK_SRC if in_book else ROOT
        if limit != file and limit not in file.parents:
            what = "docs/src (the built book holds nothing else)" if in_book else "the repository"
            problems.append(f"{where}: points outside {what}")
            continue
        if anchor:
            if file.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(file):
                problems.append(f"{where}: {file.relative_to(ROOT)} has no heading #{anchor}")


def check_summary(problems):
    summary = BOOK_SRC / "SUMMARY.md"
    if not summary.exists():
        problems.append("docs/src/SUMMARY.md: missing")
        return
    listed = {
        (summary.parent / unquote(t.partition("#")[0])).resolve()
        for _, t in links(summary.read_text(encoding="utf-8"))
        if t and not t.startswith("#")
    }
    for chapter in sorted(BOOK_SRC.rglob("*.md")):
        if chapter != summary and chapter.resolve() not in listed:
            problems.append(
                f"{chapter.relative_to(ROOT)}: not in docs/src/SUMMARY.md, so the book leaves it out"
            )


def check_book(book, problems):
    """Links between the built book's pages reach an existing page and id."""
    ids = {}
    pages = sorted(p for p in book.rglob("*.html") if p.name != "print.html")
    for page in pages:
        ids[page.resolve()] = set(re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8")))
    for page in pages:
        for target in re.findall(r'<a\s[^>]*href="([^"]+)"', page.read_text(encoding="utf-8")):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
                continue
            path_part, _, anchor = html.unescape(target).partition("#")
            file = page.resolve() if not path_part else (page.parent / unquote(path_part)).resolve()
            if path_part.endswith("/"):
                file = file / "index.html"
            where = f"{page.relative_to(book)}: {target}"
            if not file.exists():
                problems.append(f"built book: {where}: no such page")
            elif anchor and file.suffix == ".html" and unquote(anchor) not in ids.get(file, set()):
                problems.append(f"built book: {where}: no element with that id")


def main(argv):
    problems = []
    docs = [ROOT / d for d in TOP_DOCS] + sorted(BOOK_SRC.rglob("*.md"))
    for doc in docs:
        check_file(doc, problems)
    check_summary(problems)
    if len(argv) == 3 and argv[1] == "--book":
        check_book(Path(argv[2]), problems)
    elif len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print(f"check-docs: {len(problems)} broken link(s) or reference(s)")
        return 1
    print(f"check-docs: {len(docs)} documents, every internal link resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
