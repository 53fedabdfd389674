"""The backup part of a run's summary document (`run --json`, hook templates).

Kept apart from hooks.py so the document's shape is in one small place: the keys are
kebab-case like every other JSON palhm prints (`list --json`).
"""

from __future__ import annotations

from typing import Any


def backup_document(result: object) -> dict[str, Any]:
    """`copy`, `objects` and `rotation` of a BackupResult; {} for anything else."""
    from palhm.engine.backup import BackupResult

    if not isinstance(result, BackupResult):
        return {}
    manifest = result.manifest
    return {
        "copy": {
            "prefix": result.prefix,
            "location": result.location,
            "size": manifest.size,
            "objects": len(manifest.objects),
            "suspect": list(getattr(manifest, "suspect", ()) or ()),
        },
        "objects": [
            {
                "path": record.path,
                "size": record.size,
                "checksum": (
                    {"algorithm": record.checksum_algorithm, "hex": record.checksum}
                    if record.checksum is not None
                    else None
                ),
                "duration": round((record.end - record.start).total_seconds(), 3),
                "attempts": getattr(record, "attempts", 1),
            }
            for record in manifest.objects
        ],
        "rotation": {
            "keep": [
                {"prefix": d.copy.prefix, "reasons": list(d.reasons)} for d in result.rotation.keep
            ],
            "remove": [
                {"prefix": d.copy.prefix, "reasons": list(d.reasons)}
                for d in result.rotation.remove
            ],
        },
    }
