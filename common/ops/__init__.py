"""Operator entry points on top of everything else: the aircast CLI and the demo. Never shipped in
a function zip.
"""
