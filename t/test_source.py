"""Rules the source keeps: log tags unique and below next-number (the
httpd APLOGNO way), and the core in src/ free of httpd headers so its unit
tests link without httpd."""

import glob
import os
import re

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources(pattern):
    return sorted(glob.glob(os.path.join(TOP, pattern)))


def test_every_log_tag_is_unique_and_below_next_number():
    seen = {}
    for path in sources("*.c") + sources("examples/*.c"):
        with open(path) as f:
            for n in re.findall(r"SSE_LOGNO\((\d{5})\)", f.read()):
                assert n not in seen, ("SSE%s used in %s and %s"
                                       % (n, seen[n], path))
                seen[n] = path
    with open(os.path.join(TOP, "next-number")) as f:
        nxt = int(f.read())
    assert seen, "no SSE_LOGNO tag found at all"
    too_high = sorted(n for n in seen if int(n) >= nxt)
    assert not too_high, ("tags at or above next-number %d: %r; raise "
                          "next-number" % (nxt, too_high))


def test_core_includes_no_httpd_header():
    httpd_headers = re.compile(
        r'#\s*include\s*[<"](httpd|http_\w+|ap_\w+|util_\w+|mpm_\w+|'
        r'scoreboard)\.h[>"]')
    offenders = []
    for path in sources("src/*.[ch]"):
        with open(path) as f:
            if httpd_headers.search(f.read()):
                offenders.append(os.path.relpath(path, TOP))
    assert not offenders, "httpd headers in the core: %r" % offenders
