"""``ferkit trust RUN_DIR``: re-save the checksums of a run one trusts.

Loading refuses a card without ``weights_sha256`` (and a checkpoint without its recorded
hash), so runs written by an older ferkit need this one step. It never trusts blindly: the
weights must load under the same rules as ``load_run`` (skops files against the allow-list,
safetensors files parsed and fitted to the card's architecture) and a checkpoint must have
the structure training needs, before the hash is written (atomically) into the card.

Here the model files; the training checkpoint's trust and ``trust_run`` (both, as ``ferkit
trust`` does) are in :mod:`ferkit.training.checkpoint`, above the models in the layers.
"""

from __future__ import annotations

from pathlib import Path

from ferkit import io
from ferkit.errors import FerkitError, ModelFileError
from ferkit.models.card import ModelCard, load_card
from ferkit.models.checks import CARD, card_file, read_model_file, sha256
from ferkit.models.store import SKOPS_FILE, load_skops_bytes


def _verify_weights(run_dir: Path, card: ModelCard) -> tuple[Path, bytes]:
    """The weights file and its bytes, after loading them as ``load_run`` would."""
    kind = card.get("kind")
    if kind == "sklearn":
        path = card_file(run_dir, card.get("weights", SKOPS_FILE), "weights")
    elif kind == "torch":
        from ferkit.models.torch_run import WEIGHTS_FILE

        path = card_file(run_dir, card.get("weights", WEIGHTS_FILE), "weights")
    else:
        raise ModelFileError(f"{run_dir / CARD}: unsupported run kind {kind!r}")
    data = read_model_file(path)
    if kind == "sklearn":
        load_skops_bytes(data, path)
    else:
        from ferkit.models.torch_run import build_network, load_state, parse_safetensors

        try:
            model = build_network(card.get("architecture"))
        except FerkitError as exc:
            raise ModelFileError(f"{run_dir / CARD}: {exc}") from exc
        load_state(model, parse_safetensors(data, path), path)
    return path, data


def trust_card(run_dir: Path, force: bool = False) -> str:
    """Verify the run's weights and write their SHA-256 into its card; a line saying what
    was done. Weights that differ from a checksum already recorded need ``force``."""
    card = load_card(run_dir)
    path, data = _verify_weights(run_dir, card)
    digest, recorded = sha256(data), card.get("weights_sha256")
    if recorded == digest:
        return f"{path}: checksum already recorded in {CARD}"
    if recorded is not None and not force:
        raise ModelFileError(
            f"{path}: does not match the weights_sha256 in {CARD} (changed since the run was "
            "saved); pass --force to trust the file as it is now"
        )
    io.write_json(run_dir / CARD, card.updated(weights_sha256=digest).to_dict())
    return f"{path}: loads safely; checksum recorded in {CARD}"
