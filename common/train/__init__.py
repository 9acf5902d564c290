"""The train job: fit, evaluate against baselines, write a version, gate, promote."""
