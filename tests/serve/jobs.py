"""The small job the service tests submit: a 4-GPU switch fabric, with a user's range (no range search)."""

TINY = """\
name: tiny4
nodes:
  - {name: gpu, kind: gpu, count: 4}
  - {name: nvs, kind: switch}
links:
  - {src: "gpu{i}", dst: nvs, bandwidth: 100}
"""
FAST = {"max_bytes": "1GiB"}  # a user's range: no range search, a shorter job
