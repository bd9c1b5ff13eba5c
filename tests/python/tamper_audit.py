"""Tampers with kho's audit log as someone with write access to the bucket could: lifts the
append-only property and rewrites one entry with the Python `deltalake` package.

usage: tamper_audit.py <store-dir> <seq>
"""
import os
import sys

from deltalake import DeltaTable

store, seq = sys.argv[1], int(sys.argv[2])
table = DeltaTable(f"{store}/system/audit")
table.alter.set_table_properties({"delta.appendOnly": "false"}, raise_if_not_exists=False)
table = DeltaTable(f"{store}/system/audit")
metrics = table.update(updates={"rows": "rows + 1000"}, predicate=f"seq = {seq}")
print(metrics)

# The native libraries' worker threads can abort the interpreter's teardown under load
# ("terminate called without an active exception"); the answer is out, so leave now.
sys.stdout.flush()
os._exit(0)
