"""Reader-study statistics: empirical ROC/AUC, DeLong covariance, MRMC (pure functions).

Import from the submodules: ``engine.stats.roc``, ``engine.stats.delong``, ``engine.stats.mrmc``.
"""
