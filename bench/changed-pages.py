#!/usr/bin/env python3
"""Which b-trees a write changed: compares two copies of an SQLite database (both checkpointed,
so that every page is in the file) page by page and names each changed page's b-tree with the
`dbstat` table of the second.

    KEEP=1 DURATION=3 HEALTHZ_DURATION=1 bench/events.sh      # prints "bench: kept DIR"
    cd DIR && sqlite3 encours.db 'PRAGMA wal_checkpoint(TRUNCATE)' && cp encours.db before.db
    cp before.db after.db
    sed -n '143,144p' batches.ndjson | sed 's/{round}/0/g' | jq -c '.events[]' > more.ndjson
    ENCOURS_DATABASE_URL=sqlite://$PWD/after.db encours events import --batch 1000 more.ndjson
    sqlite3 after.db 'PRAGMA wal_checkpoint(TRUNCATE)'
    bench/changed-pages.py before.db after.db

(Batches past those the run sent, with its round's ids, continue the run as it would have gone;
events.json says how many batches were answered.)
"""
import collections
import sqlite3
import sys


def main(before_path: str, after_path: str) -> None:
    con = sqlite3.connect(after_path)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    owner = dict((page, name) for name, page in con.execute("SELECT name, pageno FROM dbstat"))
    with open(before_path, "rb") as f:
        before = f.read()
    with open(after_path, "rb") as f:
        after = f.read()
    changed = collections.Counter()
    for i in range(len(after) // page_size):
        start = i * page_size
        if after[start:start + page_size] != before[start:start + page_size]:
            changed[owner.get(i + 1, "(free list)")] += 1
    print(f"{sum(changed.values())} pages changed")
    for name, pages in changed.most_common():
        print(f"{pages:7d}  {name}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
