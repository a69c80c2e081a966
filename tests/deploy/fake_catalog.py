"""The GPU catalogue the fake management API serves (`GET /v2/catalog/gpus`, schema `GpuType`).

RunPod's own data, not the builder's: the type ids, display names, memory and pools of RunPod's GPU
types page, with the Blackwell MIG slices of AMPERE_24 and ADA_48_PRO (docs/upstream-notes.md); a type
in no serverless pool has `pool: null` (GpuType.pool's description). Prices and counts are required by
the schema but read by nobody here: zeros.
"""

from __future__ import annotations

from typing import Any

# (id, display name, memory GB, pool)
GPU_TYPES: list[tuple[str, str, int, str | None]] = [
    ("AMD Instinct MI300X OAM", "MI300X", 192, None),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, "AMPERE_80"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, "AMPERE_80"),
    ("NVIDIA A30", "A30", 24, None),
    ("NVIDIA A40", "A40", 48, "AMPERE_48"),
    ("NVIDIA B200", "B200", 180, None),
    ("NVIDIA GeForce RTX 3090", "RTX 3090", 24, "AMPERE_24"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, "ADA_24"),
    ("NVIDIA GeForce RTX 5090", "RTX 5090", 32, None),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, "ADA_80_PRO"),
    ("NVIDIA H100 NVL", "H100 NVL", 94, "ADA_80_PRO"),
    ("NVIDIA H100 PCIe", "H100 PCIe", 80, "ADA_80_PRO"),
    ("NVIDIA H200", "H200 SXM", 141, "HOPPER_141"),
    ("NVIDIA H200 NVL", "NVIDIA H200 NVL", 143, "HOPPER_141"),
    ("NVIDIA L4", "L4", 24, "AMPERE_24"),
    ("NVIDIA L40", "L40", 48, "ADA_48_PRO"),
    ("NVIDIA L40S", "L40S", 48, "ADA_48_PRO"),
    ("NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", 16, "AMPERE_16"),
    ("NVIDIA RTX 4000 Ada Generation", "RTX 4000 Ada", 20, "AMPERE_16"),
    ("NVIDIA RTX 4000 SFF Ada Generation", "RTX 4000 Ada SFF", 20, "AMPERE_16"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, "ADA_48_PRO"),
    ("NVIDIA RTX A4000", "RTX A4000", 16, "AMPERE_16"),
    ("NVIDIA RTX A4500", "RTX A4500", 20, "AMPERE_16"),
    ("NVIDIA RTX A5000", "RTX A5000", 24, "AMPERE_24"),
    ("NVIDIA RTX A6000", "RTX A6000", 48, "AMPERE_48"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX PRO 6000", 96, None),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition MIG 1g.24gb", "PRO 6000 MIG 24GB", 24, "AMPERE_24"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition MIG 2g.48gb", "PRO 6000 MIG 48GB", 48, "ADA_48_PRO"),
    ("Tesla V100-PCIE-16GB", "Tesla V100", 16, None),
]


def gpu_type(type_id: str, name: str, memory: int, pool: str | None) -> dict[str, Any]:
    """One catalogue entry in the shape of the document's GpuType."""
    return {
        "id": type_id,
        "name": name,
        "pool": pool,
        "manufacturer": "AMD" if type_id.startswith("AMD") else "NVIDIA",
        "memory": memory,
        "secure": True,
        "community": False,
        "price": {"secure": 0.0, "community": 0.0},
        "maxCount": {"secure": 8, "community": 0},
    }


def catalogue() -> list[dict[str, Any]]:
    return [gpu_type(*row) for row in GPU_TYPES]
