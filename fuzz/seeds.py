"""Seeds for the fuzzers from the unit tests' case files, and case lines
from the fuzzers' crash files.

    python3 fuzz/seeds.py corpus OUTDIR      # OUTDIR/{route,id,frame}/
    python3 fuzz/seeds.py case HARNESS FILE  # a line for t/unit/cases/*.txt

A seed file is named by the SHA-1 of its bytes, as libFuzzer names the
inputs it keeps. Case files escape a byte as \\xHH (t/unit/unit.c).
"""

import hashlib
import os
import re
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(TOP, "t", "unit", "cases")
ESC = re.compile(rb"\\x([0-9A-Fa-f]{2})")


def unescape(field):
    return ESC.sub(lambda m: bytes([int(m.group(1), 16)]), field)


def escape(data):
    out = []
    for i, b in enumerate(data):
        if 0x20 <= b <= 0x7e and b != 0x5c and not (i == 0 and b == 0x23):
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


def case_lines(name):
    with open(os.path.join(CASES, name), "rb") as f:
        for line in f.read().split(b"\n"):
            if line and not line.startswith(b"#"):
                yield line.split(b"\t")


def route_seeds():
    for fields in case_lines("routes.txt"):
        yield unescape(fields[0])


def id_seeds():
    """Names and ids from the route cases, behind a position and a byte."""
    seen = set()
    for n, path in enumerate(route_seeds()):
        for seg in path.split(b"/")[1:]:
            if seg and seg not in seen:
                seen.add(seg)
                yield bytes([n % 97, 0x41 + n % 26]) + seg


def frame_seeds():
    for fields in case_lines("frames.txt"):
        yield b"\0".join(unescape(f) for f in fields[:-1])


SEEDS = {"route": route_seeds, "id": id_seeds, "frame": frame_seeds}


def write_corpus(outdir):
    for name, gen in SEEDS.items():
        d = os.path.join(outdir, name)
        os.makedirs(d, exist_ok=True)
        n = 0
        for data in gen():
            path = os.path.join(d, hashlib.sha1(data).hexdigest())
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(data)
            n += 1
        print("seeds: %s: %d inputs from t/unit/cases" % (name, n))


def case_line(harness, path):
    """The case line a crash file stands for (expectation left to fill)."""
    with open(path, "rb") as f:
        data = f.read()
    if harness == "route":
        return ("routes.txt", escape(data.split(b"\0")[0])
                + "\t<ok ...|EINVAL|ENOENT>")
    if harness == "frame":
        fields = [escape(f) for f in data.split(b"\0")]
        return ("frames.txt", "\t".join(fields) + "\t<expected|ENOSPC>")
    return (None, None)     # ids have no case file: test_id.c takes them


def main(argv):
    if len(argv) == 3 and argv[1] == "corpus":
        write_corpus(argv[2])
        return 0
    if len(argv) == 4 and argv[1] == "case":
        fname, line = case_line(argv[2], argv[3])
        if fname:
            print("t/unit/cases/%s: %s" % (fname, line))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
