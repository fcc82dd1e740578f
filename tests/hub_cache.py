"""Puts a model into the Hugging Face hub cache exactly as `hf download` lays it out: blobs named
by content hash, a snapshot of relative symlinks per commit, and refs/main naming that commit."""
import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@contextlib.contextmanager
def in_hub_cache(repo_id: str, saved_dir: Path) -> Iterator[Path]:
    """A save_pretrained directory cached as repo `repo_id` (the tests' own cache, see conftest.py) while the
    block runs; removed after it, so no other test finds it."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    try:
        for file in sorted(saved_dir.iterdir()):
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            shutil.copyfile(file, repo / "blobs" / digest)
            (snapshot / file.name).symlink_to(os.path.join("..", "..", "blobs", digest))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        yield repo
    finally:
        shutil.rmtree(repo)
