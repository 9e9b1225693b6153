"""HGR's 16 semantic roles and the mapping of raw labels onto them."""
from __future__ import annotations

ROLES: tuple[str, ...] = (
    "V", "ARG1", "ARG0", "ARG2", "ARG3", "ARG4",
    "ARGM-LOC", "ARGM-MNR", "ARGM-TMP", "ARGM-DIR", "ARGM-ADV", "ARGM-PRP",
    "ARGM-PRD", "ARGM-COM", "ARGM-MOD", "NOUN",
)
ROLE_INDEX: dict[str, int] = {role: i for i, role in enumerate(ROLES)}
NUM_ROLES = len(ROLES)


def normalize_role(label: str) -> str:
    """Map a raw role label onto the 16 roles: ``C-X``/``R-X`` become ``X``; anything unknown is ``NOUN``."""
    if label.startswith(("C-", "R-")):
        label = label[2:]
    return label if label in ROLE_INDEX else "NOUN"


def role_index(label: str) -> int:
    return ROLE_INDEX[normalize_role(label)]
