#!/usr/bin/env python3
"""Writes the list of the code a running berth executes (crates/berth/layout.txt), from
callgrind's record of a run; the release build links that code as one block
(crates/berth/build.rs turns the list into a linker script).

    python3 layout.py BERTH CALLGRIND_OUT... > crates/berth/layout.txt

The outputs are runs in order: the list holds the functions of the first first, then
those each later run added, so that what one workload runs lies together and a config
without it leaves that part of the block untouched.

BERTH is the release binary the run was recorded with (its symbol table says which of
the recorded names are its own functions). Every function of berth's own that
callgrind saw executed (the C library's and the loader's are not berth's) becomes a
pattern of the list: its
mangled name (at most PREFIX characters of it) and a `*`. The pattern leaves out the
hash legacy-mangled Rust names end with, which changes with the compiler, the profile
(`release` or `dist`) and a dependency's version, and keeps the block's code the same
for a build of the same sources on another machine.
"""
import re
import subprocess
import sys

# Long enough that few functions that never run share a pattern with one that does (a
# pattern of 48 made the block 60 % larger), short enough to keep the list small.
PREFIX = 96
LEGACY_HASH = re.compile(r"17h[0-9a-f]{16}E$")
# What the optimizer appends to a local function's name (`.1234`, `.llvm.5678`, and
# the C compiler's `.constprop.0`, `.part.0`, `.isra.0`, `.cold`): it changes with
# every build.
SUFFIX = re.compile(r"(\.(llvm|constprop|part|isra|cold|lto_priv|\d+))+$")


def executed(path):
    """The functions that ran in one callgrind output: those with a `fn=` block. Each
    output gives a name once, with its number, where it first appears (`fn=` or a
    callee's `cfn=`), and the number alone after that. Callgrind marks a recursion
    level with 'N."""
    names = {}
    ran = set()
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"(c?fn)=\((\d+)\)(?: (.+))?", line)
            if not m:
                continue
            if m.group(3):
                names[m.group(2)] = re.sub(r"'\d+$", "", m.group(3).strip())
            if m.group(1) == "fn":
                ran.add(m.group(2))
    return {names[i] for i in ran if i in names}


def functions(binary):
    """The binary's own functions: name to size."""
    out = subprocess.run(
        ["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True
    ).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def pattern(name):
    """A legacy name keeps its `17h` (the hash's tag), so that a pattern does not also
    take the closures and items nested in its function."""
    base = SUFFIX.sub("", name)
    return LEGACY_HASH.sub("17h", base)[:PREFIX] + "*"


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: layout.py BERTH CALLGRIND_OUT...")
    binary, outputs = sys.argv[1], sys.argv[2:]
    sizes = functions(binary)
    ran, patterns, seen = set(), [], set()
    for path in outputs:
        phase = {n for n in executed(path) if n in sizes} - ran
        ran |= phase
        for p in sorted({pattern(n) for n in phase} - seen):
            seen.add(p)
            patterns.append(p)
    if not ran:
        sys.exit(f"none of the functions in {' '.join(outputs)} is in {binary}: "
                 "was the run recorded with this binary?")
    print("# The code a running berth executes, which the release build links as one block")
    print("# (crates/berth/build.rs): the start of each function's mangled name. Written by")
    print(f"# bench/memory/layout.sh; do not edit. {len(ran)} functions, "
          f"{sum(sizes[n] for n in ran) / 1e6:.1f} MB.")
    for p in patterns:
        print(p)
    print(f"{len(ran)} functions executed, {len(patterns)} patterns", file=sys.stderr)


if __name__ == "__main__":
    main()
