"""The lr factors ``k -> factor`` the tables' ``lr_schedule`` names (torch's LambdaLR)."""


def decay(k):
    """A decaying lr factor (exponential)."""
    return 0.93**k


def cyclic(k):
    """A non-monotone lr factor: 1, 4/3, 5/3, ..., 3, 1, ... (period 7)."""
    return 1.0 + (k % 7) / 3


def ramp(k):
    """An increasing lr factor that is not 1 at the first step: 0.5, 0.6, 0.7, ..."""
    return 0.5 + k / 10
