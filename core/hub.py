"""Where models come from: local folders, Hugging Face ids (through the HF cache), settings.

Resolution order for the policy: the explicit `--model`, then `AR3D_MODEL`, then the default
id. For the VQ-VAE: `--vqvae`, then `AR3D_VQVAE`, then a VQ-VAE bundled in the policy folder
(`vqvae.safetensors` / `vqvae.bin` / `3DVQVAE.bin`, optionally with `vqvae_config.json`), then
the public `yejunliang23/3DVQVAE`. Hugging Face ids go through `huggingface_hub`, so the usual
cache (`HF_HOME`, `HF_HUB_CACHE`) and `HF_HUB_OFFLINE` apply; ar3d's own files live in the
platformdirs data folder (`ar3d info` prints it).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import Ar3dError

DEFAULT_POLICY = "IvanTang/3DGen-R1"  # AR3D-R1, one-step; ShapeLLM-Omni: yejunliang23/ShapeLLM-7B-omni
# The small demo model trained on procedural shapes ships inside the package (issue #7); when it
# is there it is the default, so a fresh install generates offline with nothing configured.
DEMO_MODEL = Path(__file__).resolve().parents[1] / "models" / "demo"
DEFAULT_VQVAE = "yejunliang23/3DVQVAE"
VQVAE_FILENAMES = ("vqvae.safetensors", "vqvae.bin", "3DVQVAE.bin")
KNOWN_POLICIES = ("IvanTang/3DGen-R1", "yejunliang23/ShapeLLM-7B-omni")


class ModelNotFoundError(Ar3dError, FileNotFoundError):
    """A model is neither a local path nor available from the Hugging Face cache/hub."""


def data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(os.environ.get("AR3D_HOME") or user_data_dir("ar3d", appauthor=False))


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _download_hint(repo_id: str, what: str, filename: str | None = None) -> str:
    target = f" {filename}" if filename else ""
    why = "downloads are off (HF_HUB_OFFLINE=1)" if offline() else "it could not be downloaded"
    return (
        f"{what} '{repo_id}' is not in the Hugging Face cache and {why}. On a machine with internet run\n"
        f"    hf download {repo_id}{target}\n"
        f"(it fills the cache that ar3d reads), or download the files into a folder and pass its path "
        f"(--model/--vqvae, or the AR3D_MODEL / AR3D_VQVAE settings)."
    )


def _looks_like_repo_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~"))


def default_policy() -> str:
    """`AR3D_MODEL`, else the bundled demo model when present, else AR3D-R1's Hugging Face id."""
    if os.environ.get("AR3D_MODEL"):
        return os.environ["AR3D_MODEL"]
    return str(DEMO_MODEL) if (DEMO_MODEL / "config.json").is_file() else DEFAULT_POLICY


def is_demo_model(path: Path) -> bool:
    return Path(path).resolve() == DEMO_MODEL


def resolve_policy(spec: str | os.PathLike | None = None) -> Path:
    """The local folder of a policy checkpoint (downloading only when the hub is reachable and allowed)."""
    spec = str(spec or default_policy())
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"'{path}' is not a model folder: it has no config.json. Pass the folder that holds "
                "config.json, the tokenizer files and the *.safetensors weights."
            )
        return path
    if not _looks_like_repo_id(spec):
        raise ModelNotFoundError(f"no model folder at '{spec}', and it is not a Hugging Face id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(spec, local_files_only=offline()))
    except Exception as e:  # the hub raises several kinds: offline, not found, network
        raise ModelNotFoundError(_download_hint(spec, "The policy")) from e


def bundled_vqvae(policy_dir: Path | None) -> Path | None:
    if policy_dir is None:
        return None
    for name in VQVAE_FILENAMES:
        if (policy_dir / name).is_file():
            return policy_dir / name
    return None


def resolve_vqvae(spec: str | os.PathLike | None = None, policy_dir: Path | None = None) -> Path:
    """The local weights file of the VQ-VAE."""
    spec = spec or os.environ.get("AR3D_VQVAE")
    if not spec:
        found = bundled_vqvae(policy_dir)
        if found:
            return found
        spec = DEFAULT_VQVAE
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        found = bundled_vqvae(path) or next(iter(sorted(path.glob("*.safetensors"))), None)
        if not found:
            raise ModelNotFoundError(f"'{path}' holds no VQ-VAE weights (looked for {', '.join(VQVAE_FILENAMES)})")
        return found
    if path.is_file():
        return path
    if not _looks_like_repo_id(spec):
        raise ModelNotFoundError(f"no VQ-VAE file at '{spec}', and it is not a Hugging Face id (owner/name)")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(spec, "3DVQVAE.bin", local_files_only=offline()))
    except Exception as e:
        raise ModelNotFoundError(_download_hint(spec, "The VQ-VAE", "3DVQVAE.bin")) from e


def cached_models() -> list[dict]:
    """ar3d-relevant checkpoints already in the Hugging Face cache and ar3d's data folder."""
    found = []
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_id in (*KNOWN_POLICIES, DEFAULT_VQVAE):
                found.append({"id": repo.repo_id, "path": str(repo.repo_path), "bytes": repo.size_on_disk})
    except Exception:  # no cache yet
        pass
    models = data_dir() / "models"
    if models.is_dir():
        for p in sorted(models.iterdir()):
            if (p / "config.json").is_file():
                found.append({"id": p.name, "path": str(p), "bytes": sum(f.stat().st_size for f in p.rglob("*") if f.is_file())})
    return found


def given_weights_file(spec: str | os.PathLike | None, *, env: str, filename: str, what: str) -> Path | None:
    """The weights file named explicitly or by the ``env`` setting; None when neither names one
    (the caller then looks in its caches). A name that is not a file is an error, not a fallback."""
    spec = spec or os.environ.get(env)
    if not spec:
        return None
    path = Path(str(spec)).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"{what}: no file at '{path}'. Pass the path of {filename} (or set {env}).")
    return path


def resolve_weights_file(spec: str | os.PathLike | None, *, env: str, repo_id: str, filename: str, what: str) -> Path:
    """A single weights file (reward and metric models): the explicit path, then the ``env``
    setting, then ``filename`` of ``repo_id`` in the Hugging Face cache (downloaded only when
    the hub is reachable and allowed)."""
    path = given_weights_file(spec, env=env, filename=filename, what=what)
    if path is not None:
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=offline()))
    except Exception as e:
        raise ModelNotFoundError(
            _download_hint(repo_id, what, filename) + f" The {env} setting takes the file's path."
        ) from e


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, read in blocks (weights files are GBs): which weights a result came from."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
