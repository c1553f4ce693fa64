"""Starting a model from another run's weights (`init_checkpoint`, what `trainer.warm_start` hands a round)."""
from typing import Any, Dict

import torch

NO_WEIGHTS = ("drop_rate", "drop_path_rate")  # model keys that regularise without changing the weights' shapes


def same_weights(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Whether two model groups have the same weights (they may differ in dropout and stochastic depth only)."""
    return ({k: v for k, v in a.items() if k not in NO_WEIGHTS} == {k: v for k, v in b.items() if k not in NO_WEIGHTS})


def load_weights(net: torch.nn.Module, checkpoint: str) -> None:
    """Initialise a network from a Lightning checkpoint of the same model; a clear error when it does not fit."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    weights = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1:2] or [str(err)[:200]]
        raise ValueError(f"init_checkpoint={checkpoint} does not fit this model ({first[0].strip()}); warm-start "
                         f"only with the checkpoint's own model group, or set trainer.warm_start=false") from None
