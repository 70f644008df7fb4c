#!/usr/bin/env python3
"""Write the seed corpus for the dns_request fuzz target: valid queries of every kind the
server handles, and malformed ones (truncated, bad pointers, odd counts, responses).
Usage: python3 fuzz/gen_corpus.py  (writes fuzz/corpus/dns_request/, names = sha1 of content)"""
import hashlib
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dns_request")


def name(n):
    return b"".join(bytes([len(p)]) + p.encode() for p in n.strip(".").split(".") if p) + b"\0"


def msg(qid=0x1234, flags=0x0100, questions=(("web", 1),), an=b"", ancount=0, opt=None, qclass=1):
    body = b"".join(name(q) + struct.pack("!HH", t, qclass) for q, t in questions)
    ar, arcount = b"", 0
    if opt is not None:
        size, version, rdata = opt
        ar = b"\0" + struct.pack("!HHBBHH", 41, size, 0, version, 0, len(rdata)) + rdata
        arcount = 1
    return struct.pack("!HHHHHH", qid, flags, len(questions), ancount, 0, arcount) + body + an + ar


seeds = {
    "a_web": msg(),
    "aaaa_web": msg(questions=(("web", 28),)),
    "any_web": msg(questions=(("web", 255),)),
    "mx_web": msg(questions=(("web", 15),)),
    "a_alias": msg(questions=(("www", 1),)),
    "a_many": msg(questions=(("many", 1),)),
    "a_many_edns": msg(questions=(("many", 1),), opt=(4096, 0, b"")),
    "a_many_edns_small": msg(questions=(("many", 1),), opt=(100, 0, b"")),
    "a_many_edns_cookie": msg(questions=(("many", 1),), opt=(1232, 0, struct.pack("!HH", 10, 8) + b"\x01" * 8)),
    "a_qualified": msg(questions=(("web.front", 1),)),
    "a_case": msg(questions=(("WeB.FrOnT", 1),)),
    "a_db": msg(questions=(("db", 1),)),
    "a_db_back": msg(questions=(("db.back", 1),)),
    "a_missing": msg(questions=(("nosuch", 1),)),
    "a_outside": msg(questions=(("example.com", 1),)),
    "ptr_v4": msg(questions=(("2.0.1.10.in-addr.arpa", 12),)),
    "ptr_v4_missing": msg(questions=(("99.0.1.10.in-addr.arpa", 12),)),
    "ptr_v4_outside": msg(questions=(("8.8.8.8.in-addr.arpa", 12),)),
    "ptr_v4_partial": msg(questions=(("1.10.in-addr.arpa", 12),)),
    "ptr_v6": msg(questions=(("2" + ".0" * 29 + ".d.f.ip6.arpa", 12),)),
    "ptr_bad": msg(questions=(("x.y.in-addr.arpa", 12),)),
    "edns_v1": msg(opt=(1232, 1, b"")),
    "two_questions": msg(questions=(("web", 1), ("db", 1))),
    "no_question": msg(questions=()),
    "chaos": msg(questions=(("version.bind", 16),), qclass=3),
    "notify": msg(flags=0x2000),
    "update": msg(flags=0x2800),
    "status": msg(flags=0x1000),
    "response": msg(flags=0x8180),
    "no_rd": msg(flags=0x0000),
    "root": msg(questions=(("", 2),)),
    "long_name": msg(questions=((".".join(["a" * 63] * 3) + "." + "b" * 61, 1),)),
    "label_with_dot": struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\x03a.b\x00\x00\x01\x00\x01",
    "self_pointer": struct.pack("!HHHHHH", 2, 0x100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
    "forward_pointer": struct.pack("!HHHHHH", 3, 0x100, 1, 0, 0, 0) + b"\xc0\x20\x00\x01\x00\x01" + b"\0" * 16,
    "pointer_loop": struct.pack("!HHHHHH", 4, 0x100, 1, 0, 0, 0) + b"\x01a\xc0\x0e\x00\x01\x00\x01",
    "counts_lie": struct.pack("!HHHHHH", 5, 0x100, 9, 9, 9, 9) + name("web") + b"\x00\x01\x00\x01",
    "truncated_question": msg()[:-3],
    "header_only": struct.pack("!HHHHHH", 6, 0x100, 0, 0, 0, 0),
    "short": b"\x12\x34\x01",
    "empty": b"",
    "two_opt": msg(opt=(512, 0, b""))[:-11] + struct.pack("!HHHHHH", 0, 0, 0, 0, 0, 0)[:0],
    "answer_in_query": msg(an=name("web") + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x0a\x01\x00\x02", ancount=1),
    "opt_in_answer": msg(an=b"\0" + struct.pack("!HHIH", 41, 512, 0, 0), ancount=1),
    "bad_opt_len": msg(opt=(1232, 0, b""))[:-2] + b"\xff\xff",
    "binary_label": struct.pack("!HHHHHH", 7, 0x100, 1, 0, 0, 0) + b"\x41" + b"\x00" * 2 + b"\x00\x01\x00\x01",
    "extended_label": struct.pack("!HHHHHH", 8, 0x100, 1, 0, 0, 0) + b"\x40web\x00\x00\x01\x00\x01",
}
# two OPT records (FORMERR territory): build by hand
opt = b"\0" + struct.pack("!HHBBHH", 41, 512, 0, 0, 0, 0)
seeds["two_opt"] = struct.pack("!HHHHHH", 9, 0x100, 1, 0, 0, 2) + name("web") + b"\x00\x01\x00\x01" + opt + opt

os.makedirs(OUT, exist_ok=True)
for label, data in seeds.items():
    with open(os.path.join(OUT, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), OUT))
