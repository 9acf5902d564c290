"""What every job runs inside: the adapters built from settings (services), the run audit and job
wrapper (runs), the location registry, and the HTTP handler of the function entry points.
"""
