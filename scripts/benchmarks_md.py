"""benchmarks_md.py - the one section of BENCHMARKS.md that scripts/asterisk-bench-report.py
writes and scripts/bench-report.py keeps when it rewrites the rest of the file."""

START = "<!-- asterisk-bench:start -->"
END = "<!-- asterisk-bench:end -->"
RAW_DATA = "\n## Raw data"


def section(text):
    """The marked section of `text` (markers included, newline-terminated), or None."""
    if START not in text or END not in text:
        return None
    return START + text.split(START, 1)[1].split(END, 1)[0] + END + "\n"


def place(text, block):
    """`text` with `block` replacing its marked section, or else before "## Raw data", or at the end."""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        return before + block + ("\n" + after if after else "")
    if RAW_DATA in text:
        head, tail = text.split(RAW_DATA, 1)
        return head.rstrip("\n") + "\n\n" + block + RAW_DATA + tail
    return text.rstrip("\n") + "\n\n" + block
