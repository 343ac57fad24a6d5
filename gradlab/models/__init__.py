"""Built-in models (linear1d, the seed net and the mlp family) and the loader for the user's own.

:mod:`gradlab.spec` turns a model name and its options into a :class:`gradlab.problem.Problem`.
"""
