#!/usr/bin/env python3
"""Reads a JUnit XML file with junitparser (an independent consumer) and checks its shape.

usage: junit_check.py FILE SUITES TESTS FAILURES ERRORS SKIPPED
Every testcase must have a name and a classname, every failure and error a message; the counts
found by walking the cases must equal the expected ones and the totals the file declares.
"""
import sys

from junitparser import Error, Failure, JUnitXml, Skipped


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    want = dict(zip(["suites", "tests", "failures", "errors", "skipped"], map(int, argv[2:])))
    xml = JUnitXml.fromfile(path)
    got = dict(suites=0, tests=0, failures=0, errors=0, skipped=0)
    declared = dict(tests=0, failures=0, errors=0, skipped=0)
    problems = []
    for suite in xml:
        got["suites"] += 1
        for key in declared:
            declared[key] += int(getattr(suite, key) or 0)
        if not suite.name:
            problems.append("a testsuite without a name")
        for case in suite:
            got["tests"] += 1
            if not case.name or not case.classname:
                problems.append(f"testcase {case.name!r} lacks a name or classname")
            for result in case.result:
                if isinstance(result, Failure):
                    got["failures"] += 1
                elif isinstance(result, Error):
                    got["errors"] += 1
                elif isinstance(result, Skipped):
                    got["skipped"] += 1
                else:
                    continue
                if not isinstance(result, Skipped) and not result.message:
                    problems.append(f"{case.name!r}: {result._tag} without a message")
    if got != want:
        problems.append(f"counted {got}, expected {want}")
    for key, n in declared.items():
        if n != got[key]:
            problems.append(f"testsuite {key} attributes add up to {n}, the cases to {got[key]}")
    if problems:
        for p in problems:
            print(f"junit_check: {path}: {p}", file=sys.stderr)
        return 1
    print(f"junit_check: {path}: ok {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
