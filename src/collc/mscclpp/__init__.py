"""MSCCL++ execution plans (the JSON schedules that MSCCL++ v0.10.x's executor loads): reading,
verifying, writing and predicting them."""
