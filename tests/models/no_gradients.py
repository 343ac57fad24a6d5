"""A model file that forgot gradients()."""


def init(seed):
    return {"w": [1.0, 2.0]}, None, None


def cost(p, X, Y):
    return 0.0
