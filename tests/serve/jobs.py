"""The small job the service tests submit: a 4-GPU switch fabric, with a user's range (no range search)."""

from fabrics import switch_fabric

TINY = switch_fabric("tiny4", switch="nvs")
FAST = {"max_bytes": "1GiB"}  # a user's range: no range search, a shorter job
