"""Shared test set-up: offline by construction, fixtures from ../shared."""

import os
from pathlib import Path

import pytest

# Any accidental Hugging Face download must fail loudly, never hang or succeed silently.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AR3D_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {FIXTURES}; set AR3D_SHARED to the shared/ folder")
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL policy + tokenizer with mesh tokens, saved like a real checkpoint."""
    from ar3d.core.factory import create_random_policy

    path = tmp_path_factory.mktemp("tiny_policy")
    create_random_policy(path, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_policy(tiny_policy_dir):
    from ar3d.core.policy import Policy

    return Policy.load(tiny_policy_dir, device="cpu")
