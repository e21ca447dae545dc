"""A LoRA-wrapped test policy whose adapter really changes the outputs (trainer tests)."""

from __future__ import annotations


def lora_policy(pair, target_modules):
    """(the policy of folder `pair` on the CPU in fp32, its peft LoRA wrapper in eval mode) with
    adapters on `target_modules` whose B matrices are random (peft starts them at 0, and an
    adapter that changes nothing would test nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ar3d.core.policy import Policy

    policy = Policy.load(pair, device="cpu", dtype=torch.float32)
    peft_model = get_peft_model(policy.model, LoraConfig(r=4, lora_alpha=8, target_modules=list(target_modules),
                                                         exclude_modules=r".*visual.*"))  # fmt: skip
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    peft_model.eval()
    return policy, peft_model
