"""Training jobs outside the web server: the SQLite job store, local workers, Ray.

Nothing in this package imports TensorFlow at module level: the server
imports the store and the pool; only the worker process's entry point
(fmnist.jobs.worker) and the Ray task load fmnist.ml.
"""
