"""The forecasting domain: features, the model, training and evaluation, model versions (registry),
and the serving snapshot's shape. Pure computation over frames plus the artifact-store port.
"""
