"""The prompt slots are created on the device of the embedding table they start from.

The ``meta`` device stands in for a GPU: a tensor made on the CPU and mixed with a meta tensor raises.
"""

import torch
from incantations.model import IncantationPrompt


def test_prompt_slots_are_created_on_the_tables_device():
    table = torch.randn(20, 8).to("meta")  # a GPU embedding table
    prompt = IncantationPrompt(table, vocab=[1, 2, 3, 4], neutral=4, k=3, mode="hard")
    assert prompt.P.device.type == "meta" and prompt.P.shape == (3, 8)
    assert prompt.slots().device.type == "meta"
