"""Writes a model into the Hugging Face hub cache exactly as `huggingface-cli download` lays it out:
blobs named by content hash, a snapshot of relative symlinks per commit, and refs/main naming that commit."""
import hashlib
import os
import shutil
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def add_to_hub_cache(cache: Path, repo_id: str, saved_dir: Path) -> Path:
    """Copies a save_pretrained directory into `cache` as repo `repo_id`; returns the repo's cache folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(saved_dir.iterdir()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, repo / "blobs" / digest)
        (snapshot / file.name).symlink_to(os.path.join("..", "..", "blobs", digest))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return repo
