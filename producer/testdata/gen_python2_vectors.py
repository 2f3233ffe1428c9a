# -*- coding: utf-8 -*-
"""Generates python2_split_vectors.json: what the original system (Python 2)
picks for 50/50 and list splits. Run with CPython 2.7 (64-bit, hash
randomization off, the 2.7 default):

    python2.7 producer/testdata/gen_python2_vectors.py > producer/testdata/python2_split_vectors.json

Seeds are str (bytes): vid + test as UTF-8, as the original passes a str id
plus a str test name. A unicode test name with non-ASCII characters hashes
differently (over code points) and is not what these vectors cover.
"""
import json
import random
import sys

assert sys.maxsize == 2 ** 63 - 1, "needs a 64-bit CPython 2.7"
assert sys.flags.hash_randomization == 0, "run without -R / PYTHONHASHSEED"

gen = random.Random(20261203)  # only to invent inputs, fixed for stable output

ASCII_TESTS = ["superior dessert preference", "checkout button color",
               "pricing page", "hero copy", "t", "", "a/b test #7",
               "signup flow v2", "Mixed CASE name", "x" * 200]
UTF8_TESTS = [u"ünïcode test ✓", u"café", u"日本語のテスト", u"emoji 😀 test",
              u"Ελληνικά", u"naïve — dash"]
POPS = [["a", "b"], ["red", "green", "blue"], ["one", "two", "three", "four", "five"],
        [u"crème", u"brûlée"], ["solo"], [str(i) for i in range(10)],
        [u"☕", u"🍵", u"🧃", u"🥛"]]


def vid():
    return "%040x" % gen.getrandbits(160)


def utf8(s):
    return s.encode("utf-8") if isinstance(s, unicode) else s


def text(s):
    return s.decode("utf-8")


def record(v, t, pops):
    seed = v + t  # both str: hash(str) seeds, as in the original
    r = random.Random(seed)
    if pops is None:
        sel = str(r.choice((True, False)))
    else:
        sel = r.choice(pops)
    return {"vid": text(v), "test": text(t), "hash": hash(seed),
            "populations": None if pops is None else [text(p) for p in pops],
            "selected": text(sel)}


out = []
# Edge cases: empty seed (hash 0), empty vid, empty test.
out.append(record("", "", None))
out.append(record("", "superior dessert preference", None))
out.append(record("0123456789abcdef0123456789abcdef01234567", "", ["a", "b"]))
for i in range(260):
    t = gen.choice(ASCII_TESTS) if i % 2 == 0 else utf8(gen.choice(UTF8_TESTS))
    if i % 3 == 0:
        pops = None
    else:
        pops = [utf8(p) for p in gen.choice(POPS)]
    out.append(record(vid(), t, pops))

json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
