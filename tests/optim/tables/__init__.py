"""The optimizer trajectory tables, one module per torch.optim algorithm (see ../cases.py)."""
